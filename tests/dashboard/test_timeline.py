"""The run's history: stepping, recorded commands, going back and forking."""

from broker.scenario import load
from broker.simulation import Simulation
from dashboard.live import timeline as timeline_module
from dashboard.live.timeline import Timeline


def run_to_end(timeline: Timeline) -> None:
    while timeline.step_engine():
        pass


def test_stepping_to_the_end_gives_the_engines_own_trace() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    reference = Simulation(load("producer-retry-duplicate"))
    reference.run()

    run_to_end(timeline)

    assert timeline.sim.trace(include_quiet=True) == reference.trace(include_quiet=True)
    assert timeline.position == timeline.length


def test_step_event_stops_at_each_visible_event() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))

    timeline.step_event()
    timeline.step_event()

    assert timeline.position == 2
    kinds = [e.kind for e in timeline.sim.events if not e.quiet]
    # The first engine step arms the fault (two events), the second starts producing.
    assert kinds == ["step.drop-response", "fault.armed", "step.produce"]


def test_seeking_back_replays_to_exactly_the_same_state() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    for _ in range(6):
        timeline.step_event()
    at_six = timeline.sim.snapshot()
    run_to_end(timeline)
    end = timeline.sim.snapshot()

    timeline.seek(6)
    assert timeline.sim.snapshot() == at_six
    assert timeline.in_past

    timeline.seek(timeline.length)
    assert timeline.sim.snapshot() == end


def test_a_command_is_replayed_at_the_step_it_was_pressed() -> None:
    timeline = Timeline(load("producer-idempotent"))
    for _ in range(5):
        timeline.step_event()
    timeline.submit({"do": "crash-broker", "broker": 1}, "crash broker-1")
    run_to_end(timeline)
    trace = timeline.sim.trace()

    timeline.seek(2)
    timeline.seek(timeline.length)

    assert timeline.sim.trace() == trace
    assert any("broker.crash" in line for line in trace)


def test_a_command_pressed_in_the_past_forks_the_run() -> None:
    timeline = Timeline(load("producer-idempotent"))
    run_to_end(timeline)
    original_length = timeline.length

    timeline.seek(3)
    timeline.submit({"do": "crash-producer", "producer": "p1"}, "crash p1")

    assert timeline.length == 3
    assert not timeline.in_past
    assert [c.step_index for c in timeline.commands] == [timeline.steps]
    run_to_end(timeline)
    assert timeline.length != original_length
    assert any(e.kind == "app.crash" for e in timeline.sim.events)


def test_a_command_after_the_run_settled_reopens_it() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    run_to_end(timeline)
    assert timeline.ended

    timeline.submit({"do": "crash-broker", "broker": 2}, "crash broker-2")
    run_to_end(timeline)

    assert any(e.kind == "broker.crash" for e in timeline.sim.events)


def test_checkpoints_make_seeking_replay_only_from_the_nearest_one(monkeypatch) -> None:
    monkeypatch.setattr(timeline_module, "CHECKPOINT_EVERY_STEPS", 10)
    timeline = Timeline(load("producer-acks-all-failover"))
    run_to_end(timeline)
    reference = Timeline(load("producer-acks-all-failover"))
    target = timeline.length - 2
    for _ in range(target):
        reference.step_event()

    timeline.seek(target)

    assert timeline.sim.snapshot() == reference.sim.snapshot()
    assert timeline.sim.trace(include_quiet=True) == reference.sim.trace(include_quiet=True)
