"""What the travel layer and the narration's "This moment" are fed, frame by frame: each
message on the wire under its Kafka API, lost ones and retries told apart, a pace that follows
the play speed, and one sentence for every event of a step or beat."""

from typing import Any

import pytest

from broker.scenario import load
from broker.simulation import Simulation
from dashboard.live.runtime import Control, Room
from dashboard.live.timeline import Timeline
from dashboard.panels import fragments
from dashboard.panels.story import story_of
from dashboard.panels.travel import KEEP, Wire, duration_ms, message
from tests.dashboard.conftest import observed


def drawn(name: str) -> list[dict[str, Any]]:
    """Every message and note of a whole run of built-in scenario ``name``."""
    sim = Simulation.from_scenario(load(name), seed=None)
    sim.run()
    return [m for e in sim.events if not e.quiet and (m := message(e)) is not None]


def test_a_transactional_run_sends_each_request_under_its_api() -> None:
    labels = {(m["role"], m["label"].split(" [")[0]) for m in drawn("txn-abort-read-committed")}

    for api in ("InitProducerId", "AddPartitionsToTxn", "Produce", "EndTxn", "WriteTxnMarkers"):
        assert ("request", api) in labels
        assert any(role == "response" and label.startswith(api) for role, label in labels)
    # The consumer's group requests (the engine gives JoinGroup's answer no ends to draw).
    assert {("request", "JoinGroup"), ("request", "OffsetCommit")} <= labels


def test_a_lost_answer_and_its_retry_are_told_apart() -> None:
    messages = drawn("producer-retry-duplicate")
    lost = [m for m in messages if m["role"] == "lost"]
    retries = [m for m in messages if m["retry"]]

    assert [(m["src"], m["dst"], m["label"]) for m in lost] == [
        ("broker-1", "p1", "Produce response lost")
    ]
    assert [(m["src"], m["dst"], m["retry"]) for m in retries] == [
        ("p1", "broker-1", "retry, attempt 2, no seq")
    ]
    # An idempotent producer's retry carries the same sequence numbers.
    assert "retry, attempt 2, same seq 0..0" in {m["retry"] for m in drawn("producer-idempotent")}
    # A broken connection: the request on it is lost, the connection shown closed.
    roles = {(m["role"], m["label"]) for m in drawn("producer-acks0-lost")}
    assert ("lost", "Produce request lost: connection broken") in roles
    assert ("closed", "connection closed") in roles


def test_the_wire_keeps_the_newest_and_counts_them_all() -> None:
    sim = Simulation.from_scenario(load("consumer-commit-after-processing"), seed=None)
    sim.run()
    wire = Wire()
    wire.feed(sim.events)
    state = wire.state()

    everything = [m for e in sim.events if not e.quiet and (m := message(e)) is not None]
    assert state["total"] == len(everything) > KEEP
    assert state["messages"] == everything[-KEEP:]


@pytest.mark.parametrize(
    ("status", "ms"),
    [
        ({"playing": False, "speed": "1"}, 1000),  # a step
        ({"playing": True, "speed": "beat", "beats": "0.5"}, 1600),
        ({"playing": True, "speed": "beat", "beats": "2"}, 400),
        ({"playing": True, "speed": "0.25"}, 1200),
        ({"playing": True, "speed": "1"}, 600),
        ({"playing": True, "speed": "16"}, 150),
        ({"playing": True, "speed": "end"}, 0),
        ({"playing": False, "speed": "end", "ended": 3625}, 0),  # the last frame of "to the end"
    ],
)
def test_a_message_moves_for_as_long_as_the_play_speed_allows(
    status: dict[str, Any], ms: int
) -> None:
    assert duration_ms(status) == ms


def test_every_moment_has_one_sentence_per_event() -> None:
    timeline = Timeline(load("producer-retry-duplicate"), None)
    scenario = {"producers": [{"name": "p1", "idempotent": False, "acks": "all"}]}
    said: dict[int, list[str]] = {}
    while timeline.step_event():
        beat = story_of(timeline.sim, scenario)["beat"]
        assert beat and all(line["text"].strip() for line in beat)
        said[timeline.position] = [line["text"] for line in beat]

    assert said[3] == ["p1 sends a Produce request with p1-0 to broker-1, the leader of orders-0."]
    assert said[5][0].startswith("The network lost broker-1's answer to a Produce request")
    assert "p1 puts p1-0 back at the front of its queue to send again" in said[6][1]
    assert said[8] == [
        "p1 sends p1-0 to broker-1 again (attempt 2), with no sequence number (idempotence is "
        "off), so nothing marks it as a copy."
    ]
    assert said[9] == [
        "broker-1 appended p1-0 at orders-0@1 again (first at 0): the retry of a batch whose "
        "answer was lost, and idempotence is off. Without idempotence a batch carries no "
        "producer id and sequence number, so the broker cannot tell a retry from a new message."
    ]


def test_the_room_shows_this_moment_when_stepping_not_while_playing_at_a_speed() -> None:
    room = Room("r1", load("producer-retry-duplicate"))
    for now in range(5):
        room.submit(Control("step"))
        room.tick(100.0 + now)
    html = room.page().html
    assert "This moment" in html["narration"]
    assert "The network lost broker-1&#x27;s answer" in html["narration"]
    assert (
        'data-role="lost" data-src="broker-1" data-dst="p1">Produce response lost'
        in (html["travel"])
    )

    room.submit(Control("speed", speed="16"))
    room.submit(Control("play"))
    room.tick(106.0)
    assert "This moment" not in room.page().html["narration"]


def test_a_request_and_its_answer_are_told_by_their_api() -> None:
    spec = load("consumer-commit-after-processing")
    timeline = Timeline(spec, None)
    said: list[str] = []
    while timeline.step_event() and timeline.position <= 8:
        said += [line["text"] for line in story_of(timeline.sim, {})["beat"]]

    assert "p1 sends an InitProducerId request to broker-1 (asking for a producer id)." in said
    assert "broker-1 answers p1's InitProducerId request (PID 0 epoch 0)." in said
    assert "billing sends a JoinGroup request to broker-1 (billing as a new member)." in said


@pytest.mark.parametrize("seeking", [True, False])
def test_a_frame_from_the_middle_of_a_seek_says_so_to_the_travel_layer(seeking: bool) -> None:
    # A seek longer than one tick sends frames from the middle of its replay; the frame after
    # them counts more messages than the one before, which travel.js must not draw as new
    # ones on the wire (what a user saw: two messages left on screen after "back").
    timeline = Timeline(load("producer-retry-duplicate"))
    for _ in range(8):
        timeline.step_event()
    obs = observed(timeline)
    obs["status"] = {**obs["status"], "seeking": seeking}

    html = fragments.build_model(obs).html["travel"]

    assert f'data-seeking="{str(seeking).lower()}"' in html
