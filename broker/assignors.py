"""Client-side partition assignors, as Kafka's RangeAssignor and
RoundRobinAssignor compute them (members sorted by member id)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from broker.protocol import TopicPartition

Assignment = dict[str, list[TopicPartition]]


def assign(
    strategy: str,
    subscriptions: Mapping[str, Sequence[str]],
    partitions_per_topic: Mapping[str, int],
) -> Assignment:
    if strategy == "roundrobin":
        return round_robin(subscriptions, partitions_per_topic)
    return range_assign(subscriptions, partitions_per_topic)


def range_assign(
    subscriptions: Mapping[str, Sequence[str]], partitions_per_topic: Mapping[str, int]
) -> Assignment:
    """Per topic: consecutive ranges, the first members taking one extra."""
    out: Assignment = {member: [] for member in sorted(subscriptions)}
    for topic in sorted(partitions_per_topic):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not members:
            continue
        count = partitions_per_topic[topic]
        each, extra = divmod(count, len(members))
        start = 0
        for i, member in enumerate(members):
            n = each + (1 if i < extra else 0)
            out[member].extend(TopicPartition(topic, p) for p in range(start, start + n))
            start += n
    return out


def round_robin(
    subscriptions: Mapping[str, Sequence[str]], partitions_per_topic: Mapping[str, int]
) -> Assignment:
    """All partitions in order, dealt to the members in turn (skipping members
    not subscribed to a partition's topic)."""
    members = sorted(subscriptions)
    out: Assignment = {member: [] for member in members}
    if not members:
        return out
    turn = 0
    for topic in sorted(partitions_per_topic):
        for p in range(partitions_per_topic[topic]):
            for _ in range(len(members)):
                member = members[turn % len(members)]
                turn += 1
                if topic in subscriptions[member]:
                    out[member].append(TopicPartition(topic, p))
                    break
    return out
