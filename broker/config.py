"""Cluster, topic and producer settings, under Kafka's config names.

Defaults are Kafka's (4.x) unless a comment says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

INT_MAX = 2_147_483_647


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    brokers: int = 3
    broker_session_timeout_ms: int = 9000  # broker.session.timeout.ms (KRaft)
    replica_lag_time_max_ms: int = 30000  # replica.lag.time.max.ms
    unclean_leader_election_enable: bool = False  # unclean.leader.election.enable
    replica_fetch_wait_max_ms: int = 500  # replica.fetch.wait.max.ms
    replica_fetch_backoff_ms: int = 1000  # replica.fetch.backoff.ms
    replica_socket_timeout_ms: int = 30000  # replica.socket.timeout.ms
    replica_fetch_max_bytes: int = 1_048_576  # replica.fetch.max.bytes
    latency_ms: tuple[int, int] = (1, 5)  # the lab's network: one-way latency range
    group_initial_rebalance_delay_ms: int = 3000  # group.initial.rebalance.delay.ms
    # offsets.topic.num.partitions is 50 in Kafka; one partition keeps the lab legible.
    offsets_topic_num_partitions: int = 1
    offsets_topic_replication_factor: int = 3  # capped at the number of brokers
    # transaction.state.log.num.partitions is 50 in Kafka; one keeps the lab legible.
    transaction_state_log_num_partitions: int = 1
    transaction_partition_verification_enable: bool = True  # KIP-890


@dataclass(frozen=True, slots=True)
class TopicConfig:
    name: str
    partitions: int = 1
    replication_factor: int = 3
    min_insync_replicas: int = 1  # min.insync.replicas
    # Optional explicit assignment: one list of broker ids per partition.
    assignment: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    acks: int = -1  # acks: 0, 1 or -1 ("all")
    retries: int = INT_MAX
    delivery_timeout_ms: int = 120000
    request_timeout_ms: int = 30000
    max_in_flight_requests_per_connection: int = 5
    batch_size: int = 16384
    linger_ms: int = 5
    enable_idempotence: bool = True
    idempotence_set: bool = False  # enable.idempotence given explicitly (else Kafka's default)
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 1000
    metadata_max_age_ms: int = 300000  # metadata.max.age.ms: periodic metadata refresh
    transactional_id: str | None = None  # transactional.id
    transaction_timeout_ms: int = 60000  # transaction.timeout.ms

    @property
    def acks_name(self) -> str:
        return "all" if self.acks == -1 else str(self.acks)


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    group_id: str
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5000
    auto_offset_reset: str = "latest"  # earliest | latest | none
    isolation_level: str = "read_uncommitted"  # or read_committed
    max_poll_records: int = 500
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    max_poll_interval_ms: int = 300000  # also the rebalance timeout of the classic protocol
    fetch_max_wait_ms: int = 500
    max_partition_fetch_bytes: int = 1_048_576
    request_timeout_ms: int = 30000
    retry_backoff_ms: int = 100
    partition_assignment_strategy: str = "range"  # range | roundrobin
