"""Client-side partition assignors, as Kafka's RangeAssignor,
RoundRobinAssignor and CooperativeStickyAssignor compute them (members sorted
by member id).

The cooperative-sticky assignor keeps every partition with its current owner
as far as balance allows, and never hands a partition straight from one
member to another: a partition that must move is left out of this round, its
owner revokes it, and the rebalance that follows gives it to its new owner
(KIP-429, incremental cooperative rebalancing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from broker.protocol import TopicPartition

Assignment = dict[str, list[TopicPartition]]


COOPERATIVE = "cooperative-sticky"
STRATEGIES = ("range", "roundrobin", COOPERATIVE)


def assign(
    strategy: str,
    subscriptions: Mapping[str, Sequence[str]],
    partitions_per_topic: Mapping[str, int],
    owned: Mapping[str, Sequence[TopicPartition]] | None = None,
) -> Assignment:
    if strategy == "roundrobin":
        return round_robin(subscriptions, partitions_per_topic)
    if strategy == COOPERATIVE:
        return cooperative_sticky(subscriptions, partitions_per_topic, owned or {})
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


def cooperative_sticky(
    subscriptions: Mapping[str, Sequence[str]],
    partitions_per_topic: Mapping[str, int],
    owned: Mapping[str, Sequence[TopicPartition]],
) -> Assignment:
    members = sorted(subscriptions)
    out: Assignment = {member: [] for member in members}
    if not members:
        return out
    wanted = [
        TopicPartition(topic, p)
        for topic in sorted(partitions_per_topic)
        for p in range(partitions_per_topic[topic])
    ]
    each, extra = divmod(len(wanted), len(members))
    # The first `extra` members (by how much they already own) may hold one more.
    by_ownership = sorted(members, key=lambda m: (-len(owned.get(m, ())), m))
    quota = {m: each + (1 if i < extra else 0) for i, m in enumerate(by_ownership)}
    owner: dict[TopicPartition, str] = {}
    for member in members:
        for tp in sorted(owned.get(member, ())):
            if tp.topic in subscriptions[member] and tp not in owner:
                owner[tp] = member
    target: Assignment = {member: [] for member in members}
    free: list[TopicPartition] = []
    for tp in wanted:
        current = owner.get(tp)
        if current is not None and len(target[current]) < quota[current]:
            target[current].append(tp)
        else:
            free.append(tp)
    for tp in free:
        takers = [m for m in members if tp.topic in subscriptions[m]]
        if not takers:
            continue
        taker = min(takers, key=lambda m: (len(target[m]) - quota[m], len(target[m]), m))
        target[taker].append(tp)
    for member, partitions in target.items():
        for tp in partitions:
            previous = owner.get(tp)
            if previous is None or previous == member:
                out[member].append(tp)
            # else: its owner revokes it first; the next round assigns it.
    return {member: sorted(partitions) for member, partitions in out.items()}
