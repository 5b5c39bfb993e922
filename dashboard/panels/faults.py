"""The fault buttons: what a presenter may press for this scenario's actors, right now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.faults import FAULT_KINDS


@dataclass(frozen=True, slots=True)
class FaultOption:
    id: str
    label: str
    group: str
    command: dict[str, Any]
    available: bool
    why_not: str = ""


@dataclass(frozen=True, slots=True)
class Life:
    """An application's lifecycle as the buttons see it."""

    up: bool
    down: str  # why the buttons that need it running are unavailable ("" when up)
    can_restart: bool
    restart_why: str


def life(actor: dict[str, Any], entry: dict[str, Any] | None, down: str = "is not running") -> Life:
    """``actor`` from the scenario, ``entry`` its snapshot (None: not in the snapshot)."""
    name = actor["name"]
    if entry is not None and not entry.get("started", True):
        # Its start time has not come: nothing to crash, and "restart" would do nothing.
        waiting = f"{name} has not started yet (it starts at {actor.get('start_ms', 0)} ms)"
        return Life(False, waiting, False, waiting)
    up = bool(entry.get("alive", True)) if entry is not None else False
    return Life(up, "" if up else f"{name} {down}", not up, "" if not up else f"{name} is running")


def fault_options(
    scenario: dict[str, Any],
    snapshot: dict[str, Any],
    clients: list[dict[str, Any]] | None = None,
) -> list[FaultOption]:
    """The fault buttons offered for this scenario's actors, with what makes sense right now;
    ``clients``: the real Kafka clients of a room that listens (dashboard/live/wire_actors.py,
    each with its ``name``, the client.id, and its open ``connections``)."""
    options: list[FaultOption] = []
    live = {p["name"]: p for p in snapshot.get("producers") or []}
    names = [p["name"] for p in scenario.get("producers", [])]
    several = len(names) > 1
    for name in names:
        suffix = f" from {name}" if several else ""
        to = f" to {name}" if several else ""
        options.append(
            FaultOption(
                f"drop-request:{name}",
                f"Drop the next produce request{suffix}",
                "network",
                {"do": "drop-request", "api": "Produce", "client": name},
                True,
            )
        )
        options.append(
            FaultOption(
                f"drop-response:{name}",
                f"Drop the next produce response{to}",
                "network",
                {"do": "drop-response", "api": "Produce", "client": name},
                True,
            )
        )
    for producer in scenario.get("producers", []):
        name = producer["name"]
        state = life(producer, live.get(name, {}), "is already down")
        options.append(
            FaultOption(
                f"crash-producer:{name}",
                f"Crash producer app {name}",
                "producers",
                {"do": "crash-producer", "producer": name},
                state.up,
                state.down,
            )
        )
        options.append(
            FaultOption(
                f"restart-producer:{name}",
                f"Restart producer app {name}",
                "producers",
                {"do": "restart-producer", "producer": name},
                state.can_restart,
                state.restart_why,
            )
        )
    options.extend(connection_fault_options(scenario))
    options.extend(transaction_fault_options(scenario, snapshot))
    options.extend(consumer_fault_options(scenario, snapshot))
    brokers = {b["id"]: b.get("alive", True) for b in snapshot.get("brokers") or []}
    for broker in scenario.get("brokers", []):
        up = brokers.get(broker, True)
        options.append(
            FaultOption(
                f"crash-broker:{broker}",
                f"Crash broker-{broker}",
                "brokers",
                {"do": "crash-broker", "broker": broker},
                up,
                "" if up else f"broker-{broker} is already down",
            )
        )
        options.append(
            FaultOption(
                f"restart-broker:{broker}",
                f"Restart broker-{broker}",
                "brokers",
                {"do": "restart-broker", "broker": broker},
                not up,
                "" if not up else f"broker-{broker} is running",
            )
        )
    several_brokers = len(scenario.get("brokers", [])) > 1
    for broker in scenario.get("brokers", []) if several_brokers else []:
        up = brokers.get(broker, True)
        options.append(
            FaultOption(
                f"isolate-broker:{broker}",
                f"Cut broker-{broker} off from the other brokers",
                "network",
                {"do": "isolate-broker", "broker": broker, "from": "brokers"},
                up,
                "" if up else f"broker-{broker} is down",
            )
        )
    options.append(
        FaultOption(
            "heal", "Heal the network (remove every network fault)", "network", {"do": "heal"}, True
        )
    )
    options.extend(client_fault_options(clients or []))
    leaders = {p["name"]: p.get("leader") for p in snapshot.get("partitions") or []}
    for partition in scenario.get("partitions", []):
        leader = leaders.get(partition)
        options.append(
            FaultOption(
                f"crash-leader:{partition}",
                f"Crash the leader of {partition}",
                "brokers",
                {"do": "crash-broker", "broker": f"leader:{partition}"},
                leader is not None,
                "" if leader is not None else f"{partition} has no leader",
            )
        )
    return options


def connection_fault_options(scenario: dict[str, Any]) -> list[FaultOption]:
    """Break the connection that carries a producer's next Produce request or response: all
    in flight on it is lost and the client hears NETWORK_EXCEPTION (when the engine has these
    fault kinds)."""
    options: list[FaultOption] = []
    names = [p["name"] for p in scenario.get("producers", [])]
    several = len(names) > 1
    for name in names:
        for kind, what in (("request", "request from"), ("response", "response to")):
            if f"disconnect-{kind}" not in FAULT_KINDS:
                continue
            whose = f" {what} {name}" if several else f" {kind}"
            options.append(
                FaultOption(
                    f"disconnect-{kind}:{name}",
                    f"Break the connection carrying the next produce{whose}",
                    "network",
                    {"do": f"disconnect-{kind}", "api": "Produce", "client": name},
                    True,
                )
            )
    return options


# A transactional producer's client states in which each command makes sense.
CAN_BEGIN = frozenset({"UNINITIALIZED", "INITIALIZING", "READY"})
CAN_COMMIT = frozenset({"IN_TRANSACTION"})
CAN_ABORT = frozenset({"IN_TRANSACTION", "ABORTABLE_ERROR"})
PROCESSOR_CRASHES = (
    ("now", "Crash processor {name} now"),
    ("after-produce", "Crash {name} mid-transaction (after its next produce)"),
    ("after-offsets", "Crash {name} after sending its offsets (before the commit)"),
    ("after-commit", "Crash {name} after its next commit"),
)


def transaction_fault_options(
    scenario: dict[str, Any], snapshot: dict[str, Any]
) -> list[FaultOption]:
    """Begin/commit/abort for transactional producers; crash, restart, stall for processors."""
    options: list[FaultOption] = []
    producers = {p["name"]: p for p in snapshot.get("producers") or []}
    for producer in scenario.get("producers", []):
        if not producer.get("transactional_id"):
            continue
        name = producer["name"]
        live = producers.get(name, {})
        running = life(producer, live, "is down")
        state = live.get("transaction_state") or "UNINITIALIZED"

        def why(
            allowed: frozenset[str], running: Life = running, state: str = state, name: str = name
        ) -> str:
            if not running.up:
                return running.down
            if state == "FATAL_ERROR":
                return f"{name} was fenced (FATAL_ERROR): restart it"
            if state not in allowed:
                return f"{name} is {state}"
            return ""

        for action, verb, allowed in (
            ("begin", "Begin a transaction on", CAN_BEGIN),
            ("commit", "Commit the transaction of", CAN_COMMIT),
            ("abort", "Abort the transaction of", CAN_ABORT),
        ):
            reason = why(allowed)
            options.append(
                FaultOption(
                    f"{action}-transaction:{name}",
                    f"{verb} {name}",
                    "transactions",
                    {"do": f"{action}-transaction", "producer": name},
                    not reason,
                    reason,
                )
            )
    entries = {p["name"]: p for p in snapshot.get("processors") or []}
    for processor in scenario.get("processors", []):
        name = processor["name"]
        state = life(processor, entries.get(name))
        up, down = state.up, state.down
        for at, label in PROCESSOR_CRASHES:
            options.append(
                FaultOption(
                    f"crash-processor:{at}:{name}",
                    label.format(name=name),
                    "processors",
                    {"do": "crash-processor", "processor": name, "at": at},
                    up,
                    down,
                )
            )
        options.extend(restart_and_stall("processor", processor, state))
    return options


# A stall lasts the session timeout plus this margin, so that the coordinator notices it.
STALL_MARGIN_MS = 2000


def stall_ms(consumer: dict[str, Any]) -> int:
    """How long "stall past its session timeout" pauses a consumer."""
    session = int(consumer.get("session_timeout_ms", 45_000))
    return session + max(STALL_MARGIN_MS, int(consumer.get("heartbeat_interval_ms", 0)))


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} s"


def restart_and_stall(kind: str, actor: dict[str, Any], state: Life) -> list[FaultOption]:
    """The restart and stall buttons of ``actor``, a consumer or a processor (``kind``)."""
    name = actor["name"]
    duration = stall_ms(actor)
    session = _seconds(int(actor.get("session_timeout_ms", 45_000)))
    return [
        FaultOption(
            f"restart-{kind}:{name}",
            f"Restart {kind} {name}",
            f"{kind}s",
            {"do": f"restart-{kind}", kind: name},
            state.can_restart,
            state.restart_why,
        ),
        FaultOption(
            f"stall-{kind}:{name}",
            f"Stall {name} for {_seconds(duration)} (past its {session} session timeout)",
            f"{kind}s",
            {"do": f"stall-{kind}", kind: name, "duration_ms": duration},
            state.up,
            state.down,
        ),
    ]


def consumer_fault_options(scenario: dict[str, Any], snapshot: dict[str, Any]) -> list[FaultOption]:
    """Crash, restart and stall buttons for each consumer (the scenario's, and those the
    experiments panel started); sink faults when there is a sink."""
    options: list[FaultOption] = []
    entries = {c["name"]: c for c in snapshot.get("consumers") or []}
    declared = {c["name"]: c for c in scenario.get("consumers", [])}
    for name in [*declared, *(n for n in entries if n not in declared)]:
        entry = entries.get(name)
        # The run's settings win over the file's: a configure may have changed them.
        consumer = {**declared.get(name, {}), **(entry or {})}
        state = life(consumer, entry)

        def crash(
            at: str, label: str, when: bool = True, name: str = name, state: Life = state
        ) -> None:
            if when:
                options.append(
                    FaultOption(
                        f"crash-consumer:{at}:{name}",
                        label,
                        "consumers",
                        {"do": "crash-consumer", "consumer": name, "at": at},
                        state.up,
                        state.down,
                    )
                )

        commits = consumer.get("commit", "auto") != "none"
        sink = consumer.get("sink", "none")
        crash("now", f"Crash consumer {name} now")
        crash("after-commit", f"Crash {name} after its next commit", commits)
        crash("after-processing", f"Crash {name} after processing (before its commit)")
        crash("after-sink-write", f"Crash {name} after its next sink write", sink != "none")
        crash(
            "before-sink-commit",
            f"Crash {name} between its sink writes (before the sink commit)",
            sink == "offsets-with-output",
        )
        options.extend(restart_and_stall("consumer", consumer, state))
    sink_name = scenario.get("sink") or (snapshot.get("sink") or {}).get("name")
    if sink_name:
        options.append(
            FaultOption(
                "fail-sink",
                f"Make sink {sink_name} fail its next write",
                "sink",
                {"do": "fail-sink", "count": 1},
                True,
            )
        )
    return options


# Faults on a real Kafka client (broker.wire), by its client.id: each hits every connection it
# opened, as the headless room's commands do (broker/wire/control.py ``apply_command``).
CLIENT_GROUP = "real-clients"
CLIENT_ERROR = "NOT_LEADER_OR_FOLLOWER"
CLIENT_DELAY_MS = 5000
CLIENT_FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "drop-response": (
        "Drop the next produce response to {client}",
        {"do": "drop-response", "api": "Produce"},
    ),
    "error-response": (
        f"Answer {{client}}'s next produce with {CLIENT_ERROR}",
        {"do": "error-response", "api": "Produce", "error": CLIENT_ERROR},
    ),
    "delay-response": (
        f"Delay the answer to {{client}}'s next produce by {CLIENT_DELAY_MS // 1000} s",
        {"do": "delay-response", "api": "Produce", "delay_ms": CLIENT_DELAY_MS},
    ),
    "disconnect": (
        "Break every connection of {client} now",
        {"do": "disconnect"},
    ),
}


def client_fault_id(kind: str, client_id: str) -> str:
    return f"client-{kind}:{client_id}"


# Disconnected clients keep their (disabled) buttons while fewer clients than this are listed.
MAX_IDLE_CLIENT_BUTTONS = 8


def client_fault_options(clients: list[dict[str, Any]]) -> list[FaultOption]:
    """The fault buttons for each real Kafka client with a connection open (a room takes 64
    connections at most), then, disabled, for those that closed theirs while fewer than
    MAX_IDLE_CLIENT_BUTTONS clients are listed."""
    options: list[FaultOption] = []
    connected = [c for c in clients if c.get("connections", 0) > 0]
    idle = [c for c in clients if c.get("connections", 0) <= 0]
    for client in connected + idle[: max(0, MAX_IDLE_CLIENT_BUTTONS - len(connected))]:
        name = client["name"]
        up = client.get("connections", 0) > 0
        for kind, (label, command) in CLIENT_FAULTS.items():
            options.append(
                FaultOption(
                    client_fault_id(kind, name),
                    label.format(client=name),
                    CLIENT_GROUP,
                    {**command, "client": name},
                    up,
                    "" if up else f"{name} has no connection open",
                )
            )
    return options


def client_fault_refusal(fault: str, clients: list[dict[str, Any]] | None) -> str:
    """Why ``fault``, which names a real Kafka client, is not one of this room's buttons ("" when
    it names none); ``clients``: None when the room does not listen."""
    if not fault.startswith("client-") or ":" not in fault:
        return ""
    kind, _, client = fault.removeprefix("client-").partition(":")
    if kind not in CLIENT_FAULTS:
        return (
            f"There is no fault {kind!r} for real Kafka clients: "
            + ", ".join(client_fault_id(k, client) for k in CLIENT_FAULTS)
            + "."
        )
    if clients is None:
        return (
            f"No real Kafka client {client!r} here: this room's Kafka listeners are closed "
            "(Let real Kafka clients in opens them)."
        )
    known = [c["name"] for c in clients]
    if client in known:
        return f"Not now: {client} has no connection open."
    seen = ", ".join(repr(name) for name in known[:10]) or "none yet"
    return f"No real Kafka client {client!r} has connected to this room (client.ids seen: {seen})."
