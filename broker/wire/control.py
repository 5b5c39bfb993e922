"""Headless rooms: ``python -m broker listen`` and the commands it takes on stdin.

With no scenario the room is a 3-broker cluster with Kafka's defaults and no
topics: clients create them (``auto.create.topics.enable``).  With
``--commands``, each line of standard input is one JSON command, the same as a
scenario step or a room's button (``{"do": "crash-broker", "broker": 1}``); a
fault may name an external client by its ``client.id`` (``"client": "my-app"``),
which matches every connection that client opened; ``{"do": "faults"}`` lists the
armed rules and their hits, ``{"do": "verdict"}`` gives the checker's verdict.  Each
command is answered with one JSON line on standard output: ``{"ok": ...}`` or
``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from broker.config import ClusterConfig
from broker.errors import ErrorCode
from broker.faults import FAULT_KINDS, FaultRule
from broker.scenario import (
    MAX_DURATION_MS,
    ScenarioError,
    ScenarioSpec,
    load,
    step_parser,
)
from broker.simulation import Simulation
from broker.wire.gateway import Gateway
from broker.wire.listener import ListenConfig, RoomListener

MAX_COMMAND_BYTES = 4096


def default_spec(seed: int = 0) -> ScenarioSpec:
    return ScenarioSpec(
        name="listen",
        title="Kafka's defaults, three brokers, topics created by the clients",
        description="",
        semantics="at-least-once",
        ordered=False,
        seed=seed,
        duration_ms=MAX_DURATION_MS,
        cluster=ClusterConfig(),
        topics=(),
        producers=(),
        steps=(),
        expected={},
    )


def apply_command(sim: Simulation, raw: Any, gateway: Gateway | None = None) -> Any:
    """Apply one command now; the answer says what was done (ScenarioError if refused).
    ``{"do": "faults"}`` lists the armed fault rules and how often each has hit;
    ``{"do": "disconnect", "client": ID}`` breaks an external client's connections;
    ``{"do": "verdict"}`` is the checker's verdict now (``Verdict.to_dict``), external
    clients' records included."""
    if not isinstance(raw, dict):
        raise ScenarioError("command", "expected a JSON object")
    action = raw.get("do")
    if action == "faults":
        return [{"rule": r.describe(), "hit": r.hit} for r in sim.network.rules]
    if action == "verdict":
        return sim.verdict().to_dict()
    client = raw.get("client")
    if action == "disconnect" and gateway is not None and isinstance(client, str):
        broken = gateway.disconnect_client(client)
        if broken:
            return f"{broken} connections of {client} broken"
    if action in FAULT_KINDS and "client" in raw:
        rule = _client_rule(raw)
        sim.network.arm(rule)
        sim.events.emit("script", f"step.{action}", detail=rule.describe())
        return rule.describe()
    step = step_parser(sim.spec)(raw, "command", sim.now_ms)
    sim.submit(step)
    return step.describe()


def _client_rule(raw: dict[str, Any]) -> FaultRule:
    def number(key: str, default: int | None, low: int = 1) -> int | None:
        value = raw.get(key, default)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ScenarioError(key, "expected a whole number")
        if value is not None and not low <= value <= MAX_DURATION_MS:
            raise ScenarioError(key, f"must be from {low} to {MAX_DURATION_MS}, got {value}")
        return value

    def text(key: str) -> str | None:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ScenarioError(key, "expected a string")
        return value

    error = text("error")
    if raw["do"] == "error-response" and error not in ErrorCode.__members__:
        raise ScenarioError("error", f"not one of Kafka's errors the lab knows: {error!r}")
    broker = number("broker", None)
    return FaultRule(
        kind=raw["do"],
        api=text("api"),
        src=text("client"),
        dst=f"broker-{broker}" if broker is not None else None,
        partition=text("partition"),
        nth=number("nth", 1) or 1,
        count=number("count", 1),
        delay_ms=number("delay_ms", 0, low=0) or 0,
        error=error,
    )


async def serve(
    scenario: str | None, config: ListenConfig, seed: int | None, commands: bool
) -> int:
    spec = load(scenario) if scenario else default_spec()
    sim = Simulation.from_scenario(spec, seed=seed)
    room = RoomListener(sim, config)
    await room.start()
    for broker_id, port in sorted(room.ports.items()):
        print(f"broker-{broker_id} {config.addr}:{port}", flush=True)
    print(f"bootstrap {room.bootstrap}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    reader_task = asyncio.ensure_future(_commands(room, stop)) if commands else None
    await stop.wait()
    if reader_task is not None:
        reader_task.cancel()
    await room.stop()
    return 0


async def _commands(room: RoomListener, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline, MAX_COMMAND_BYTES)
        if not line:
            stop.set()  # stdin closed: whoever started us is gone
            return
        if not line.strip():
            continue
        try:
            done = apply_command(room.sim, json.loads(line), room.gateway)
            answer: dict[str, Any] = {"ok": done}
        except (ValueError, ScenarioError) as exc:
            answer = {"error": str(exc)}
        if room.driver is not None:
            room.driver.pump()
        print(json.dumps(answer), flush=True)
