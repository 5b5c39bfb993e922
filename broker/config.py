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
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 1000

    @property
    def acks_name(self) -> str:
        return "all" if self.acks == -1 else str(self.acks)
