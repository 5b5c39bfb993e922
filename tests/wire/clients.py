"""kafka-python helpers the wire tests share."""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from tests.wire.room import Room

# Short timeouts, so that a lost answer or a crashed broker costs seconds, not minutes.
FAST = {"request_timeout_ms": 3000, "retry_backoff_ms": 50, "metadata_max_age_ms": 5000}


def read_all(room: Room, topic: str, expected: int, **config: Any) -> list[Any]:
    """Every record of ``topic`` from the start, polling until ``expected`` arrived (or
    the deadline: a test then fails on the count)."""
    consumer = KafkaConsumer(
        bootstrap_servers=list(room.brokers.values()),  # broker-1 may have crashed
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **config,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        out: list[Any] = []
        for _ in range(100):
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
            if len(out) >= expected:
                # One more poll: whatever else is there (a duplicate) must show too.
                for records in consumer.poll(timeout_ms=300).values():
                    out.extend(records)
                break
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def create_topic(room: Room, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=room.bootstrap, **FAST)
    try:
        admin.create_topics([NewTopic(name, partitions, 3)])
    finally:
        admin.close()
