"""Network faults as data: what to match and what to do to it.

A rule matches requests as they enter the network ("the 2nd Produce to
orders-0 from p1").  ``drop-request`` loses the request before any broker
sees it; ``drop-response`` lets the broker act and loses its answer (the
"ack lost" case); ``delay-*`` holds the message back; ``error-response``
makes the broker answer with the given error without acting (a retriable
hiccup such as NOT_ENOUGH_REPLICAS).  A lost message stalls its connection
in that direction, as it would on TCP (see ``network``).  The ``disconnect-*``
kinds lose the message with its connection instead: the connection breaks,
whatever else is in flight on it is lost too, the client hears of it one
latency later (NETWORK_EXCEPTION) and reconnects for its next request.
``disconnect-request`` breaks it before any broker sees the request;
``disconnect-response`` after the broker acted, as its answer is sent.

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
    "disconnect-request",
    "disconnect-response",
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
        api = f"{self.api} request" if self.api else "request"
        where = ""
        if self.partition:
            where += f" to {self.partition}"
        if self.src:
            where += f" from {self.src}"
        if self.dst:
            where += f" at {self.dst}"
        if self.kind == "error-response" and self.error:
            action = f"answer {self.error} to"
        elif self.kind.startswith("delay-"):
            action = f"{self.kind} by {self.delay_ms} ms of"
        elif self.kind == "disconnect-request":
            action = "break the connection carrying"
        elif self.kind == "disconnect-response":
            action = "break the connection as the broker answers"
        else:
            action = f"{self.kind} of"
        if self.probability < 1.0:
            return f"{action} each {api}{where} with probability {self.probability:g}"
        ordinal = _ordinal(self.nth)
        if self.count == 1:
            return f"{action} the {ordinal} {api}{where}"
        plural = f"{api}s"
        if self.count is None:
            if self.nth == 1:
                return f"{action} every {api}{where}"
            return f"{action} every {api}{where} from the {ordinal} on"
        return f"{action} {self.count} {plural}{where} from the {ordinal} on"

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hit >= self.count

    def matches(self, api: str, src: str, dst: str, partition: str | None) -> bool:
        if self.api is not None and self.api != api:
            return False
        if self.src is not None and self.src != src and self.src != _base_actor(src):
            return False
        if self.dst is not None and self.dst != dst:
            return False
        return self.partition is None or self.partition == partition


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _base_actor(actor: str) -> str:
    """The scenario's name for an actor: "enricher#2.producer" -> "enricher" (a
    restarted consumer or processor is still the one the scenario named)."""
    return actor.split(".", 1)[0].split("#", 1)[0]
