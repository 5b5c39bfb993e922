"""Network faults as data: what to match and what to do to it.

A rule matches requests as they enter the network ("the 2nd Produce to
orders-0 from p1").  ``drop-request`` loses the request before any broker
sees it; ``drop-response`` lets the broker act and loses its answer (the
"ack lost" case); ``delay-*`` holds the message back; ``error-response``
makes the broker answer with the given error without acting (a retriable
hiccup such as NOT_ENOUGH_REPLICAS).  A lost message stalls its connection
in that direction, as it would on TCP (see ``network``).

Rules count matches from the moment they are armed, so ``nth = 2`` means the
second match after arming; ``count`` is how many matches are hit from
``nth`` on (None: every one until healed).  Random rules hit each match with
a probability drawn from the seeded ``faults`` stream.
"""

from __future__ import annotations

from dataclasses import dataclass

FAULT_KINDS = (
    "drop-request",
    "drop-response",
    "delay-request",
    "delay-response",
    "error-response",
)
APIS = (
    "Produce",
    "Fetch",
    "InitProducerId",
    "ListOffsets",
    "JoinGroup",
    "SyncGroup",
    "Heartbeat",
    "LeaveGroup",
    "OffsetCommit",
    "OffsetFetch",
)


@dataclass(slots=True)
class FaultRule:
    kind: str
    api: str | None = None
    src: str | None = None  # the requesting actor, e.g. "p1" or "broker-2"
    dst: str | None = None  # the broker the request goes to, e.g. "broker-1"
    partition: str | None = None  # e.g. "orders-0"
    nth: int = 1
    count: int | None = 1
    delay_ms: int = 0
    error: str | None = None  # for error-response: the error the broker answers with
    probability: float = 1.0
    until_ms: int | None = None
    seen: int = 0
    hit: int = 0

    def describe(self) -> str:
        what = self.api or "any request"
        if self.partition:
            what += f" to {self.partition}"
        if self.src:
            what += f" from {self.src}"
        if self.dst:
            what += f" at {self.dst}"
        if self.probability < 1.0:
            return f"{self.kind} of {what} with probability {self.probability:g}"
        ordinal = _ordinal(self.nth)
        if self.count == 1:
            return f"{self.kind} of the {ordinal} {what}"
        many = "every" if self.count is None else f"{self.count}"
        return f"{self.kind} of {many} {what} from the {ordinal} on"

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hit >= self.count

    def matches(self, api: str, src: str, dst: str, partition: str | None) -> bool:
        if self.api is not None and self.api != api:
            return False
        if self.src is not None and self.src != src:
            return False
        if self.dst is not None and self.dst != dst:
            return False
        return self.partition is None or self.partition == partition


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
