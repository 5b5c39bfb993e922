"""Topics created while a room runs: auto-creation, CreateTopics, the internal topics.

The engine's ``Cluster`` lays its topics out when it is built; a real client may
ask for a topic that does not exist yet (``auto.create.topics.enable``) or use
groups and transactions in a scenario that had none.  ``TopicMaker`` adds such a
topic the way ``Cluster`` lays out its own: replicas round-robin from the
partition number, the first live replica leads at epoch 0, the others follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from broker.cluster import Cluster, PartitionState
from broker.config import TopicConfig
from broker.groups import OFFSETS_TOPIC
from broker.protocol import TopicPartition
from broker.transactions import TRANSACTION_STATE_TOPIC
from broker.wire import codec

LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


@dataclass(frozen=True, slots=True)
class TopicDefaults:
    """Kafka's broker defaults for topics it creates itself."""

    auto_create: bool = True  # auto.create.topics.enable
    num_partitions: int = 1  # num.partitions
    replication_factor: int = 3  # default.replication.factor (capped at the brokers)
    min_insync_replicas: int = 1  # min.insync.replicas
    max_topics: int = 64  # the lab's limit per room
    max_partitions: int = 64  # the lab's limit per topic


class TopicMaker:
    def __init__(self, cluster: Cluster, defaults: TopicDefaults) -> None:
        self.cluster = cluster
        self.defaults = defaults

    def exists(self, topic: str) -> bool:
        return topic in self.cluster.topics

    def check(self, topic: str, partitions: int, replication_factor: int) -> int:
        """0 when the topic may be created, else Kafka's error code."""
        if not LEGAL_NAME.fullmatch(topic) or topic in (".", ".."):
            return codec.INVALID_TOPIC_EXCEPTION
        if self.exists(topic):
            return codec.TOPIC_ALREADY_EXISTS
        if not 1 <= partitions <= self.defaults.max_partitions:
            return codec.INVALID_PARTITIONS
        if not 1 <= replication_factor <= self.cluster.config.brokers:
            return codec.INVALID_REPLICATION_FACTOR
        if len(self.cluster.topics) >= self.defaults.max_topics:
            return codec.POLICY_VIOLATION
        return 0

    def auto_create(self, topic: str) -> int:
        """Create ``topic`` with the defaults if auto-creation is on (Metadata does this)."""
        if self.exists(topic):
            return 0
        if not self.defaults.auto_create:
            return codec.UNKNOWN_TOPIC_OR_PARTITION
        rf = min(self.defaults.replication_factor, self.cluster.config.brokers)
        error = self.check(topic, self.defaults.num_partitions, rf)
        if error == 0:
            self.create(topic, self.defaults.num_partitions, rf, self.defaults.min_insync_replicas)
        return error

    def ensure_internal(self, topic: str) -> None:
        """``__consumer_offsets`` or ``__transaction_state``, created on first use."""
        if self.exists(topic):
            return
        config = self.cluster.config
        rf = min(config.offsets_topic_replication_factor, config.brokers)
        partitions = (
            self.cluster.offsets_partitions
            if topic == OFFSETS_TOPIC
            else self.cluster.transaction_state_partitions
        )
        assert topic in (OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC)
        self.create(topic, partitions, rf, 1)

    def create(self, topic: str, partitions: int, rf: int, min_isr: int) -> None:
        cluster = self.cluster
        config = TopicConfig(topic, partitions, rf, min_isr)
        cluster.topics[topic] = config
        brokers = cluster.config.brokers
        for p in range(partitions):
            tp = TopicPartition(topic, p)
            replicas = tuple((p + i) % brokers + 1 for i in range(rf))
            alive = [b for b in replicas if cluster.brokers[b].alive]
            leader = alive[0] if alive else None
            state = PartitionState(tp, replicas, min_isr, leader, 0, alive or [replicas[0]])
            cluster.controller.add_partition(state)
            for broker_id in replicas:
                cluster.brokers[broker_id].host(tp)
            if leader is not None:
                cluster.brokers[leader].become_leader(state)
            for broker_id in alive[1:]:
                cluster.brokers[broker_id].become_follower(state)
        cluster.events.emit(
            "controller",
            "topic.created",
            detail=f"{topic}: {partitions} partitions, replication factor {rf}",
        )
