"""The verdict of a headless room (``{"do": "verdict"}``) judges a real kafka-python
producer's records: a dropped Produce answer makes a non-idempotent client write its
batch twice, a duplicate; with idempotence the broker deduplicates the retry, no anomaly."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from tests.wire.clients import FAST, read_all
from tests.wire.room import Room

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_retry_after_a_lost_answer_is_judged_by_idempotence(room: Room, idempotent: bool) -> None:
    topic = "judged"
    warm = KafkaProducer(bootstrap_servers=room.bootstrap, client_id="warm", **FAST)
    warm.send(topic, b"first").get(timeout=10)
    warm.close()
    assert "ok" in room.command(do="drop-response", api="Produce", client="retrier")
    p = KafkaProducer(
        bootstrap_servers=room.bootstrap,
        client_id="retrier",
        acks="all",
        enable_idempotence=idempotent,
        retries=5,
        **FAST,
    )
    metadata = p.send(topic, key=b"order-1", value=b"once").get(timeout=30)
    p.close()
    assert [r["hit"] for r in room.command(do="faults")["ok"]] == [1]  # the answer was lost
    assert len(read_all(room, topic, 2 if idempotent else 3)) == (2 if idempotent else 3)
    verdict = room.command(do="verdict")["ok"]
    anomalies = [(a["kind"], a["message_id"], a["offsets"]) for a in verdict["anomalies"]]
    outcome = verdict["outcome"]
    assert (outcome["produced"], outcome["acknowledged"], outcome["in_log"]) == (2, 2, 2)
    if idempotent:
        assert metadata.offset == 1
        assert anomalies == []
    else:
        assert metadata.offset == 2
        # The retry carried the same message: the first attempt's id, twice in the log.
        assert anomalies == [("duplicate", "retrier-2", [1, 2])]
        assert outcome["duplicated"] == 1
