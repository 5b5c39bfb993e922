"""Consumer groups of real kafka-python clients: a member killed, the survivor resumes at
the committed offset; read-process-write with send_offsets_to_transaction."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import CommitFailedError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from tests.wire.clients import FAST, create_topic, read_all
from tests.wire.room import ROOT, Room, eventually

pytestmark = pytest.mark.timeout(120)

GROUP = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300, **FAST}

# A member in its own process, so that it can be killed without a word to the group:
# it commits after each poll and says what it committed.
MEMBER = textwrap.dedent(
    """
    import sys
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(
        "work", bootstrap_servers=sys.argv[1], group_id="workers", client_id="doomed",
        auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=3000,
        heartbeat_interval_ms=300, request_timeout_ms=3000, retry_backoff_ms=50,
    )
    while True:
        batches = consumer.poll(timeout_ms=200)
        if batches:
            consumer.commit()
            for tp, records in batches.items():
                print("committed", tp.partition, records[-1].offset + 1, flush=True)
    """
)


def test_a_killed_member_s_partition_resumes_at_its_committed_offset(room: Room) -> None:
    create_topic(room, "work", 2)
    p = KafkaProducer(bootstrap_servers=room.bootstrap, **FAST)
    for partition in (0, 1):
        for i in range(10):
            p.send("work", f"{partition}:{i}".encode(), partition=partition)
    p.flush(timeout=20)
    doomed = subprocess.Popen(
        [sys.executable, "-c", MEMBER, room.bootstrap],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    survivor = KafkaConsumer(
        "work",
        bootstrap_servers=room.bootstrap,
        group_id="workers",
        client_id="survivor",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **GROUP,
    )
    try:
        seen: dict[int, list[int]] = {0: [], 1: []}

        def poll_survivor() -> None:
            for tp, records in survivor.poll(timeout_ms=100).items():
                seen[tp.partition].extend(r.offset for r in records)
            if any(seen.values()):
                # Refused while the group rebalances (a member joined or died): the next
                # poll rejoins and the next commit goes through.
                with contextlib.suppress(RebalanceInProgressError, CommitFailedError):
                    survivor.commit()

        # Each member ends up with one partition and reads all of it.
        eventually(
            lambda: poll_survivor() or (len(survivor.assignment()) == 1 and seen),
            what="a one-partition assignment",
        )
        mine = next(iter(survivor.assignment())).partition
        theirs = 1 - mine
        assert doomed.stdout is not None
        eventually(
            lambda: doomed.stdout.readline().split() == ["committed", str(theirs), "10"],
            what="the other member's commit",
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        for i in range(10, 15):
            p.send("work", f"{theirs}:{i}".encode(), partition=theirs).get(timeout=10)
        # Its session expires, the group rebalances, the survivor takes both partitions and
        # reads the dead member's from its committed offset: 10, not 0.
        eventually(
            lambda: poll_survivor() or (len(seen[theirs]) >= 5 and seen[theirs]),
            timeout_s=30,
            what="the dead member's partition",
        )
        assert seen[theirs] == [10, 11, 12, 13, 14]
        assert seen[mine] == list(range(10))
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(timeout=10)
        survivor.close()
        p.close()


def test_read_process_write_commits_outputs_and_offsets_together(room: Room) -> None:
    p = KafkaProducer(bootstrap_servers=room.bootstrap, **FAST)
    for i in range(6):
        p.send("in", f"order-{i}".encode())
    p.flush(timeout=20)
    p.close()
    consumer = KafkaConsumer(
        "in",
        bootstrap_servers=room.bootstrap,
        group_id="enricher",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **GROUP,
    )
    writer = KafkaProducer(bootstrap_servers=room.bootstrap, transactional_id="enricher-1", **FAST)
    writer.init_transactions()
    done = 0
    try:

        def process() -> bool:
            nonlocal done
            batches = consumer.poll(timeout_ms=200)
            if not batches:
                return done >= 6
            writer.begin_transaction()
            offsets = {}
            for tp, records in batches.items():
                for r in records:
                    writer.send("out", r.value.upper())
                offsets[tp] = records[-1].offset + 1
                done += len(records)
            writer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
                consumer.group_metadata(),
            )
            writer.commit_transaction()
            return done >= 6

        eventually(process, timeout_s=30, what="six processed records")
        committed = consumer.committed(TopicPartition("in", 0))
    finally:
        consumer.close()
        writer.close()
    assert committed == 6
    # An admin tool asks for every committed offset of the group (OffsetFetch, no topics).
    admin = KafkaAdminClient(bootstrap_servers=room.bootstrap, **FAST)
    try:
        listed = admin.list_group_offsets({"enricher": None})["enricher"]
    finally:
        admin.close()
    assert {tp: meta.offset for tp, meta in listed.items()} == {TopicPartition("in", 0): 6}
    outputs = read_all(room, "out", 6, isolation_level="read_committed")
    assert [r.value for r in outputs] == [f"ORDER-{i}".encode() for i in range(6)]
