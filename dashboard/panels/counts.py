"""The verdict's counts, each with one meaning: its label, and a tooltip that says what it counts.

The checker's ``duplicated`` is the sum of three disjoint counts (extra copies in the log, records
a group processed again, extra rows in the sink); the panel shows the three parts, never the sum,
so no message is counted twice on the page.
"""

from __future__ import annotations

from typing import Any

# key: (label, what it counts)
COUNTS: dict[str, tuple[str, str]] = {
    "produced": (
        "produced",
        "Distinct messages the applications created (a resend is the same message).",
    ),
    "acknowledged": (
        "acknowledged",
        "Messages a broker acknowledged as written (for a transaction: once it committed), "
        "and not reported failed later.",
    ),
    "failed": (
        "failed",
        "Messages the application was told failed, and never told were written.",
    ),
    "in_log": (
        "in the log",
        "Messages with at least one copy in the committed log: what a read_committed reader of "
        "the current leader gets, below its last stable offset.",
    ),
    "in_flight": (
        "in flight",
        "Sent, no answer yet: neither acknowledged nor failed. Not judged until the run settles.",
    ),
    "processed": (
        "processed",
        "Distinct messages some consumer group processed at least once.",
    ),
    "sunk": ("in the sink", "Distinct messages with at least one row in the sink."),
    "lost": (
        "lost",
        "Messages missing from the committed log although the application was told they were "
        "written, or (a simulated application) never heard back once the run settled; with "
        "consumers, also records a group polled but never processed. Messages still in flight "
        "are not counted here, nor a real Kafka client's records it never got an answer for.",
    ),
    "duplicated_in_log": (
        "duplicated in the log",
        "Messages with more than one copy in the committed log (each message counted once).",
    ),
    "reprocessed": (
        "processed twice",
        "Messages a consumer group processed more than once (once per group and message); "
        "the log itself holds them once.",
    ),
    "duplicated_in_sink": (
        "duplicated in the sink",
        "Messages held by more than one row of the sink.",
    ),
    "reordered": (
        "reordered",
        "Messages that sit after a message their producer sent later, on the same partition.",
    ),
    "unseen": (
        "unseen (never read)",
        "Committed messages of a topic a group reads that no poll of that group ever returned.",
    ),
    "poll_skips": (
        "poll skips",
        "Times a consumer's poll jumped over committed offsets it owned.",
    ),
    "nonmonotonic_polls": (
        "polls going back",
        "Times a consumer read an offset at or before one it had already read, without a seek.",
    ),
    "aborted": (
        "aborted (never committed)",
        "Messages whose application learned their transaction aborted.",
    ),
    "aborted_reads": (
        "aborted reads",
        "Records of aborted transactions that a consumer processed (read_uncommitted).",
    ),
}
ACKS0_ALL = (
    "sent, not acknowledged",
    "With acks=0 the producer waits for no answer: a send is done once it is on the network. "
    "No broker acknowledged any of these.",
)
ACKS0_SOME = (
    "acknowledged or sent (acks=0)",
    "Messages a broker acknowledged as written, plus the sends of acks=0 producers, which wait "
    "for no answer: those count once they are on the network.",
)
# The checker's sum of the three duplicate counts: not shown (see the module docstring).
NOT_SHOWN = frozenset({"duplicated"})

# Shown first and big; the anomaly counts follow.
HEADLINE_OUTCOMES = ("produced", "acknowledged", "in_log", "in_flight", "processed", "sunk")
ALWAYS_SHOWN = ("produced", "acknowledged", "in_log", "lost", "duplicated_in_log", "reordered")
# Shown as soon as the scenario has consumers (or a sink, transactions), even while zero.
CONSUMER_OUTCOMES = ("processed", "unseen", "reprocessed")
SINK_OUTCOMES = ("sunk", "duplicated_in_sink")
TXN_OUTCOMES = ("aborted", "aborted_reads")


def label_of(key: str, scenario: dict[str, Any]) -> tuple[str, str]:
    """(label, tooltip) of an outcome key, as this scenario's producers make it mean."""
    if key == "acknowledged":
        acks = [p.get("acks") for p in scenario.get("producers", [])]
        if acks and all(a == "0" for a in acks):
            return ACKS0_ALL
        if "0" in acks:
            return ACKS0_SOME
    return COUNTS.get(key, (key.replace("_", " "), ""))


def count_rows(
    outcome: dict[str, int],
    scenario: dict[str, Any],
    expected: dict[str, Any],
    consumers: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(headline counts, anomaly counts) to show, each {"key", "label", "title", "value"}.

    ``consumers``: the run has consumers the scenario does not declare (started from the
    experiments panel), so the consumer counts show as for a scenario that has them."""
    always = ALWAYS_SHOWN
    if consumers or scenario.get("consumers"):
        always += CONSUMER_OUTCOMES
    if scenario.get("sink"):
        always += SINK_OUTCOMES
    if scenario.get("transactional"):
        always += TXN_OUTCOMES

    def shown(key: str) -> bool:
        # Counts for parts the scenario does not use (a sink, consumers) stay out of the way.
        if key in NOT_SHOWN:
            return False
        return key in always or bool(outcome[key]) or key in expected

    def row(key: str) -> dict[str, Any]:
        label, title = label_of(key, scenario)
        return {"key": key, "label": label, "title": title, "value": outcome[key]}

    heads = [row(k) for k in HEADLINE_OUTCOMES if k in outcome and shown(k)]
    others = [row(k) for k in outcome if k not in HEADLINE_OUTCOMES and shown(k)]
    return heads, others
