"""The words of Kafka a learner meets on the room's page, defined once.

Templates mark a term with ``{% term "HW" %}`` (``{% load glossary %}``): an ``<abbr>`` whose
meaning shows on hover (its title) and on keyboard focus or a tap (room.css). The room's
glossary panel lists them all.
"""

from __future__ import annotations

GLOSSARY: dict[str, tuple[str, str]] = {
    # term: (its full name, what it means here)
    "HW": (
        "high watermark",
        "the offset below which every in-sync replica has the record: committed, and what "
        "consumers may read",
    ),
    "LEO": (
        "log end offset",
        "the offset the next record appended to this replica's log will get",
    ),
    "LSO": (
        "last stable offset",
        "below it no transaction is still open; read_committed consumers read only up to it",
    ),
    "ISR": (
        "in-sync replicas",
        "the leader and the followers caught up with it; acks=all waits for all of them, and "
        "only they may become leader",
    ),
    "epoch": (
        "epoch",
        "a generation number: a partition's leader epoch goes up with each new leader, a "
        "producer's epoch with each new instance; anything sent with an older one is refused "
        "(fenced)",
    ),
    "PID": (
        "producer id",
        "the number a broker gives an idempotent or transactional producer; with its epoch and "
        "a sequence number per partition, it lets the broker drop a retried duplicate",
    ),
    "lag": (
        "consumer lag",
        "how far a consumer is behind: the high watermark (the LSO under read_committed) minus "
        "its position",
    ),
}


def definition(term: str) -> str:
    """'high watermark: the offset below which ...' (KeyError for a term not defined here)."""
    name, meaning = GLOSSARY[term]
    return meaning if name == term else f"{name}: {meaning}"
