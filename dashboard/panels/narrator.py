"""The story of a run, told from what the engine did: one sentence of why per notable event.

A ``Narrator`` reads the event stream in order and keeps what it needs to explain the next
event (where each message was appended, which were acknowledged, what each group committed and
processed), so a forked or sandboxed run tells its own story. Routine events (a send, an
acknowledgement, a fetch) say nothing; the ones a learner should stop at (a second copy, a
truncation that takes acknowledged records, a record processed again, a crash, an election)
each get a sentence. The words come from the events' fields and details; nothing is scripted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.events import Event
from dashboard.panels.travel import REQUESTS, RESPONSES, api_of, resent

logger = logging.getLogger(__name__)
_IDS = re.compile(r"\[([^\]]*)\]")
_EPOCH = re.compile(r"^offsets? [\d.]+ epoch (\d+)")
_WIRE = re.compile(r"^(\w+) #\d+ (\S+) -> (\S+)")
_COMMITTED = re.compile(r"group (\S+): (.*)$")
_PROCESSED = re.compile(r"^processed (\S+?)(?:;|$)")
# A long run keeps its latest sentences only (the panel shows far fewer).
KEEP_LINES = 500
# The sentences kept for the events of one feed (one beat at event pacing is one moment).
BEAT_SHOWN = 3
RETRY_WHY = {
    "REQUEST_TIMED_OUT": "no answer came within request.timeout.ms",
    "NETWORK_EXCEPTION": "its connection broke before the answer came",
}


def message_ids(detail: str) -> list[str]:
    """The message ids an event's detail lists in brackets ("[p1-0, p1-1]")."""
    found = _IDS.search(detail)
    if found is None:
        return []
    return [m.strip() for m in found.group(1).split(",") if m.strip()]


def _names(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 4 else f"{', '.join(ids[:3])} and {len(ids) - 3} more"


def _span(offsets: list[int]) -> str:
    return str(offsets[0]) if len(offsets) == 1 else f"{offsets[0]}..{offsets[-1]}"


def _again_text(
    event: Event, epoch: int, why: str, same_log: bool, found: list[tuple[str, int, Any]]
) -> str:
    """One sentence for the messages of one append that a leader had seen before."""
    ids = _names([m for m, _o, _c in found])
    where = f"{event.partition}@{_span([o for _m, o, _c in found])}"
    before = _span([c.offset for _m, _o, c in found])
    if same_log:
        return f"{event.actor} appended {ids} at {where} again (first at {before}): {why}."
    old = found[0][2]
    return (
        f"{event.actor} appended {ids} at {where} as leader in epoch {epoch}: {why}. An earlier "
        f"copy sits at {before} on {old.broker} (epoch {old.epoch})."
    )


@dataclass(frozen=True, slots=True)
class Line:
    time_ms: int
    actor: str
    kind: str
    text: str


@dataclass(slots=True)
class Copy:
    broker: str
    epoch: int
    offset: int


@dataclass(slots=True)
class Narrator:
    """Feed it events in order (``feed``); ``lines`` is the story so far."""

    scenario: dict[str, Any]
    # (time_ms, broker, partition, offset) -> the message ids a truncation removed
    truncated: Callable[[int, str, str, int], list[str]] = lambda *_: []
    seq: int = 0  # the next event to read
    visible: int = 0  # events a trace shows (not quiet) read so far
    lines: list[Line] = field(default_factory=list)  # the latest sentences
    told: int = 0  # sentences told in all
    copies: dict[tuple[str, str], list[Copy]] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    retried: dict[str, str] = field(default_factory=dict)  # message id -> last retry's error
    answer_lost: set[str] = field(default_factory=set)  # clients that lost a Produce answer
    restarted: dict[str, int] = field(default_factory=dict)  # producer -> restart time
    first_append: dict[str, int] = field(default_factory=dict)  # message id -> time
    committed: dict[tuple[str, str], str] = field(default_factory=dict)  # (group, tp) -> offset
    processed: dict[tuple[str, str], int] = field(default_factory=dict)  # (group, id) -> times
    since_commit: dict[str, int] = field(default_factory=dict)  # instance -> processed records
    # the sentence being extended: ((consumer, why), message ids, first offset)
    reprocessing: tuple[tuple[str, str], list[str], int] | None = None
    # Every visible event of the latest feed (at event pacing, of the latest beat) with one
    # sentence: its story line when it has one, else what it did (``routine``).
    beat: list[Line] = field(default_factory=list)
    beat_more: int = 0  # that feed's earlier events, not kept
    aside: str = ""  # what the beat adds to the story line of the event being read

    def feed(self, events: Iterable[Event]) -> None:
        beat: list[Line] = []
        for event in events:
            self.seq = event.seq + 1
            if event.quiet:
                continue
            self.visible += 1
            handler = _HANDLERS.get(event.kind)
            self.aside = ""
            try:
                text = handler(self, event) if handler is not None else _plain(event)
                said = " ".join(part for part in (text or routine(self, event), self.aside) if part)
            except Exception:  # a detail worded in a way not foreseen: no sentence, no stop
                logger.exception("no sentence for event %s (%s)", event.seq, event.kind)
                continue
            beat.append(Line(event.time_ms, event.actor, event.kind, said))
            if text:
                self.lines.append(Line(event.time_ms, event.actor, event.kind, text))
                self.told += 1
                if len(self.lines) > KEEP_LINES * 2:
                    del self.lines[:KEEP_LINES]
        if beat:  # a feed that read nothing visible leaves the last beat's sentences
            self.beat = beat[-BEAT_SHOWN:]
            self.beat_more = len(beat) - len(self.beat)

    # -- who is who ---------------------------------------------------------------------------
    def _producer(self, name: str) -> dict[str, Any]:
        for producer in self.scenario.get("producers", []):
            if producer["name"] == name:
                return dict(producer)
        return {}

    def _group(self, instance: str) -> str:
        name = instance.split("#")[0]
        for actor in self.scenario.get("consumers", []) + self.scenario.get("processors", []):
            if actor["name"] == name:
                return str(actor["group"])
        return name

    # -- the producer side --------------------------------------------------------------------
    def _append(self, event: Event) -> str:
        ids = message_ids(event.detail)
        epoch_found = _EPOCH.match(event.detail)
        epoch = int(epoch_found.group(1)) if epoch_found else 0
        base = event.offset or 0
        partition = event.partition or ""
        # (why, same leader log?) -> [(message id, offset, earlier copy)], in batch order
        again: dict[tuple[str, bool], list[tuple[str, int, Copy]]] = {}
        for i, message_id in enumerate(ids):
            offset = base + i
            earlier = self.copies.setdefault((partition, message_id), [])
            if earlier:
                same = [c for c in earlier if c.broker == event.actor and c.epoch == epoch]
                copy = same[0] if same else earlier[-1]
                again.setdefault((self._why_again(message_id), bool(same)), []).append(
                    (message_id, offset, copy)
                )
            else:
                self.first_append.setdefault(message_id, event.time_ms)
            earlier.append(Copy(event.actor, epoch, offset))
        return " ".join(
            _again_text(event, epoch, why, same, found) for (why, same), found in again.items()
        )

    def _why_again(self, message_id: str) -> str:
        """Why a message reaches a leader a second time, from what happened to it before."""
        producer = message_id.rpartition("-")[0]
        if self.restarted.get(producer, -1) >= self.first_append.get(message_id, 0):
            return (
                f"{producer} restarted and resent what it never saw acknowledged, under a new "
                "producer id: the broker cannot recognise a message it already holds"
            )
        if producer in self.answer_lost:
            why = "the retry of a batch whose answer was lost"
        else:
            why = f"the retry of a batch whose outcome {producer} never learned"
            error = self.retried.get(message_id, "")
            if error in RETRY_WHY:
                why += f" ({RETRY_WHY[error]})"
        if not self._producer(producer).get("idempotent"):
            why += ", and idempotence is off"
            self.aside = (
                "Without idempotence a batch carries no producer id and sequence number, so the "
                "broker cannot tell a retry from a new message."
            )
        return why

    def _truncate(self, event: Event) -> str:
        removed = self.truncated(
            event.time_ms, event.actor, event.partition or "", event.offset or 0
        )
        text = (
            f"{event.actor} truncated {event.partition} to offset {event.offset}: {event.detail}."
        )
        if not removed:
            return text
        elsewhere = [
            m
            for m in removed
            if any(c.broker != event.actor for c in self.copies.get((event.partition or "", m), []))
        ]
        lost = [m for m in removed if m in self.acked and m not in elsewhere]
        text += f" It removed {_names(removed)}."
        if lost:
            text += (
                f" {_names(lost)} had been acknowledged to {'its' if len(lost) == 1 else 'their'}"
                " producer and no other copy exists: lost."
            )
        if elsewhere:
            verb = "sits" if len(elsewhere) == 1 else "sit"
            text += f" {_names(elsewhere)} also {verb} in another broker's log."
        return text

    # -- the consumer side --------------------------------------------------------------------
    def _process(self, event: Event) -> str:
        ids = message_ids(event.detail)
        if not ids:
            single = _PROCESSED.match(event.detail)
            ids = [single.group(1)] if single else []
        group = self._group(event.actor)
        self.since_commit[event.actor] = self.since_commit.get(event.actor, 0) + len(ids)
        again = []
        for message_id in ids:
            key = (group, message_id)
            self.processed[key] = self.processed.get(key, 0) + 1
            if self.processed[key] > 1:
                again.append(message_id)
        if not again:
            self.reprocessing = None
            return ""
        committed = self.committed.get((group, event.partition or ""))
        why = (
            f"group {group}'s committed offset for {event.partition} was {committed}, not past them"
            if committed is not None
            else f"group {group} had no committed offset for {event.partition}"
        )
        run = self.reprocessing
        last = self.lines[-1] if self.lines else None
        if (
            run is not None
            and run[0] == (event.actor, why)
            and last is not None
            and (last.kind, last.actor) == (event.kind, event.actor)
        ):
            # The same consumer reading on from the same stale commit: one sentence.
            run[1].extend(again)
            self.lines[-1] = Line(
                self.lines[-1].time_ms, event.actor, event.kind, _again_processed(run, event)
            )
            return ""
        self.reprocessing = ((event.actor, why), list(again), event.offset or 0)
        return _again_processed(self.reprocessing, event)

    def _crash(self, event: Event) -> str:
        pending = self.since_commit.pop(event.actor, 0)
        self.reprocessing = None
        detail = event.detail or "crashed"
        text = (
            f"{event.actor} {detail}."
            if detail.startswith("crashed")
            else (f"{event.actor} crashed ({detail}).")
        )
        if pending:
            text += (
                f" It had processed {pending} record(s) since its last commit: its group will "
                "read them again."
            )
        return text


def _again_processed(run: tuple[tuple[str, str], list[str], int], event: Event) -> str:
    (actor, why), ids, first = run
    where = f"{event.partition}@{_span(sorted({first, event.offset or 0}))}"
    return f"{actor} processed {_names(ids)} ({where}) again: {why}, so it read them once more."


# Routine events whose detail needs a few words around it.
ROUTINE = {
    "txn.client-state": "{actor}'s transaction manager: {detail}",
    "txn.partitions-added": "{actor} added {detail} to its transaction",
    "txn.state": "{actor}, as transaction coordinator: {detail}",
    "producer-id.received": "{actor} has its producer id: {detail}",
    "app.txn-committed": "{actor}'s transaction committed: {detail}",
}
_NUMBERED = re.compile(r"^#\d+\s*")


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "AEIOU" else f"a {word}"


def routine(n: Narrator, event: Event) -> str:
    """What an event did, in one plain sentence, for one that the story passes over."""
    ids = _names(message_ids(event.detail))
    kind, actor, where = event.kind, event.actor, event.partition or ""
    if kind == "produce.send":
        found = resent(event)
        if found is not None:
            attempt, seq = found
            same = (
                f"under the same sequence numbers ({seq}), by which the leader can tell a copy"
                if seq
                else "with no sequence number (idempotence is off), so nothing marks it as a copy"
            )
            return f"{actor} sends {ids} to {event.dst} again (attempt {attempt}), {same}."
        return f"{actor} sends a Produce request with {ids} to {event.dst}, the leader of {where}."
    if kind == "produce.append":
        span = event.detail.split(" epoch", 1)[0]
        return f"{actor}, the leader of {where}, appended {ids} at {span}."
    if kind == "produce.ack":
        if event.src is None:
            return f"{actor} counts {ids} as sent: with acks=0 no answer ever comes."
        where = event.detail.partition("acknowledged: ")[2] or f"offset {event.offset}"
        return f"{event.src}'s answer reaches {actor}: {ids} acknowledged at {where}."
    if kind == "produce.retry":
        why = RETRY_WHY.get(event.error or "", event.error or "it failed")
        return f"{actor} puts {ids} back at the front of its queue to send again: {why}."
    api = api_of(event)
    # The detail without the API's name and the request's number ("InitProducerId #7 for t").
    rest = _NUMBERED.sub("", event.detail.removeprefix(api).strip())
    rest = f" ({rest})" if rest else ""
    if api and kind in REQUESTS:
        return f"{event.src} sends {_a(api)} request to {event.dst}{rest}."
    if api and kind in RESPONSES:
        error = f" with {event.error}" if event.error else ""
        return f"{event.src} answers {event.dst}'s {api} request{error}{rest}."
    if kind in ROUTINE:
        return ROUTINE[kind].format(actor=actor, detail=event.detail) + "."
    if kind == "step.note":
        return "The script adds a note (see “The script says”)."
    if kind.startswith("step."):
        return f"The script: {event.detail}."
    text = f"{actor}: {event.detail or kind.replace('.', ' ')}"
    return text + (f" ({event.error})." if event.error else ".")


def _plain(event: Event) -> str:
    """Events whose detail already says why: told as they are."""
    if event.kind not in PLAIN:
        return ""
    text = (
        f"{event.actor}: {event.detail}" if event.detail else f"{event.actor}: {PLAIN[event.kind]}"
    )
    if event.error:
        text += f" ({event.error})"
    return text + "."


# Kinds told with their own detail (the engine's words); the value is said when it has none.
PLAIN = {
    "broker.crash": "crashed",
    "broker.restart": "restarted",
    "broker.fenced": "fenced",
    "broker.unfenced": "registered again",
    "broker.unreachable": "unreachable",
    "leader.elected": "a new leader",
    "isr.shrink": "the ISR shrank",
    "isr.expand": "the ISR grew",
    "partition.offline": "no leader",
    "fault.armed": "a fault is armed",
    "fault.isolate": "a broker is cut off",
    "fault.healed": "the network healed",
    "request.timeout": "a request timed out",
    "disconnected": "the connection broke",
    "response.out-of-order": "an answer came out of order",
    "produce.reject": "a Produce was refused",
    "produce.failed": "the application is told the send failed",
    "app.restart": "restarted",
    "app.stall": "stalled",
    "app.resume": "resumed",
    "app.fenced": "fenced",
    "app.txn-aborted": "its transaction aborted",
    "app.txn-failed": "its transaction failed",
    "group.member-expired": "a member expired",
    "group.rebalance": "the group rebalances",
    "consumer.revoked": "partitions revoked",
    "consumer.commit-failed": "the commit failed",
    "offset.commit-rejected": "a commit was rejected",
    "offset.dropped": "a pending commit was dropped",
    "consumer.seek": "it seeks",
    "txn.fence": "fencing",
    "txn.fenced": "fenced",
    "txn.timeout": "the transaction timed out",
    "txn.marker": "a marker",
    "processor.abort": "the transaction aborts",
    "processor.commit": "the transaction commits",
}


def _on_ack(n: Narrator, event: Event) -> str:
    n.acked.update(message_ids(event.detail))
    return ""


def _on_retry(n: Narrator, event: Event) -> str:
    for message_id in message_ids(event.detail):
        n.retried[message_id] = event.error or ""
    return ""


def _on_drop(n: Narrator, event: Event) -> str:
    wire = _WIRE.match(event.detail)
    if wire is None or wire.group(1) != "Produce" or "stalled" in event.detail:
        return ""  # followers' fetches, and the answers stuck behind a lost one
    api, src, dst = wire.groups()
    if event.kind == "net.drop-response":
        n.answer_lost.add(dst)
        return (
            f"The network lost {src}'s answer to a {api} request from {dst}: {src} acted on it, "
            f"but {dst} will never hear so."
        )
    acks = n._producer(src).get("acks")
    tail = " With acks=0 nobody waits for an answer, so nobody notices." if acks == "0" else ""
    return f"The network lost a {api} request from {src} to {dst} before the broker saw it.{tail}"


def _on_restart(n: Narrator, event: Event) -> str:
    n.restarted[event.actor] = event.time_ms
    n.answer_lost.discard(event.actor)
    return _plain(event)


def _on_start(n: Narrator, event: Event) -> str:
    incarnation, _, rest = event.detail.partition(": ")
    if incarnation.strip() in ("incarnation 1", ""):
        return f"{event.actor} started{': ' + rest if rest else ''}."
    return f"{event.actor} restarted ({incarnation}{': ' + rest if rest else ''})."


def _on_committed(n: Narrator, event: Event) -> str:
    found = _COMMITTED.match(event.detail)
    if found:
        for pair in found.group(2).split(","):
            tp, _, offset = pair.strip().partition("=")
            n.committed[(found.group(1), tp)] = offset
    return ""


def _on_commit(n: Narrator, event: Event) -> str:
    n.since_commit.pop(event.actor, None)
    return ""


def _on_position(n: Narrator, event: Event) -> str:
    return (
        f"{event.actor} starts reading {event.partition} at offset {event.offset}: {event.detail}."
    )


def _on_duplicate(n: Narrator, event: Event) -> str:
    return (
        f"{event.actor} recognised a retry by its producer id and sequence ({event.detail}): "
        "no second copy. Idempotence at work."
    )


_HANDLERS: dict[str, Callable[[Narrator, Event], str]] = {
    "produce.append": Narrator._append,
    "produce.ack": _on_ack,
    "produce.retry": _on_retry,
    "produce.duplicate": _on_duplicate,
    "net.drop-request": _on_drop,
    "net.drop-response": _on_drop,
    "replica.truncate": Narrator._truncate,
    "app.restart": _on_restart,
    "app.start": _on_start,
    "app.crash": Narrator._crash,
    "consumer.process": Narrator._process,
    "consumer.commit": _on_commit,
    "sink.commit": _on_commit,
    "processor.commit": lambda n, e: (_on_commit(n, e), _plain(e))[1],
    "offset.committed": _on_committed,
    "consumer.position": _on_position,
}
