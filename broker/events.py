"""The engine's event stream: one frozen record per thing that happened.

Everything a trace line, a diagram or the dashboard shows is derived from
these events plus ``Simulation.snapshot()``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    time_ms: int
    actor: str
    kind: str
    partition: str | None = None
    offset: int | None = None
    error: str | None = None
    detail: str = ""
    # Events describing a message on the wire carry its ends, for diagrams.
    src: str | None = None
    dst: str | None = None
    quiet: bool = False  # background chatter (empty follower fetches) left out of traces

    def trace_line(self) -> str:
        parts = [f"{self.time_ms:>9} ms", f"{self.actor:<12}", f"{self.kind:<22}"]
        where = self.partition or ""
        if self.offset is not None:
            where = f"{where}@{self.offset}" if where else f"@{self.offset}"
        parts.append(f"{where:<14}")
        text = "  ".join(parts)
        if self.detail:
            text += f"  {self.detail}"
        if self.error:
            text += f"  error={self.error}"
        return text.rstrip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time_ms": self.time_ms,
            "actor": self.actor,
            "kind": self.kind,
            "partition": self.partition,
            "offset": self.offset,
            "error": self.error,
            "detail": self.detail,
            "src": self.src,
            "dst": self.dst,
        }


def _zero() -> int:
    return 0


class EventLog:
    """Keeps the most recent ``limit`` events; older ones are counted, not kept."""

    def __init__(self, limit: int = 200_000, enabled: bool = True) -> None:
        self.limit = limit
        self.enabled = enabled
        self._events: deque[Event] = deque(maxlen=limit)
        self.next_seq = 0
        self._now: Callable[[], int] = _zero

    def bind_clock(self, now: Callable[[], int]) -> None:
        self._now = now

    def emit(
        self,
        actor: str,
        kind: str,
        partition: str | None = None,
        offset: int | None = None,
        error: str | None = None,
        detail: str = "",
        src: str | None = None,
        dst: str | None = None,
        quiet: bool = False,
    ) -> None:
        if not self.enabled:
            return
        seq = self.next_seq
        self.next_seq = seq + 1
        self._events.append(
            Event(seq, self._now(), actor, kind, partition, offset, error, detail, src, dst, quiet)
        )

    @property
    def dropped(self) -> int:
        """How many early events fell out of the window."""
        return self.next_seq - len(self._events)

    def last(self, count: int) -> list[Event]:
        """The newest ``count`` events, oldest first, without copying the window."""
        out = list(islice(reversed(self._events), max(0, count)))
        out.reverse()
        return out

    def since(self, seq: int) -> list[Event]:
        """Every event kept from ``seq`` on (all kept ones if ``seq`` fell out)."""
        return self.last(self.next_seq - max(seq, self.dropped))

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)
