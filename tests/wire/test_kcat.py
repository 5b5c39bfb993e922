"""Debian's kcat (librdkafka's command-line client) against a headless room."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.wire.room import Room

NEEDS_KCAT = "needs Debian's kcat (apt-get install kcat); .ci/run installs it"
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("kcat") is None, reason=NEEDS_KCAT),
]


def kcat(room: Room, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        ["kcat", "-b", room.bootstrap, "-m", "20", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kcat_produces_idempotently_and_consumes(room: Room) -> None:
    kcat(room, "-P", "-t", "kc", "-K", ":", "-X", "enable.idempotence=true", stdin="k1:a\nk2:b\n")
    out = kcat(room, "-C", "-t", "kc", "-o", "beginning", "-e", "-f", "%o %k %s\n")
    assert out.splitlines() == ["0 k1 a", "1 k2 b"]


def test_kcat_writes_a_committed_transaction(room: Room) -> None:
    kcat(room, "-P", "-t", "kc-txn", "-X", "transactional.id=kcat-1", stdin="x\ny\n")
    out = kcat(
        room,
        "-C",
        "-t",
        "kc-txn",
        "-o",
        "beginning",
        "-e",
        "-X",
        "isolation.level=read_committed",
        "-f",
        "%s\n",
    )
    assert out.splitlines() == ["x", "y"]


def test_kcat_lists_each_broker_at_its_own_port(room: Room) -> None:
    out = kcat(room, "-L")
    for broker_id, addr in room.brokers.items():
        assert f"broker {broker_id} at {addr}" in out
