"""A real server (Daphne, embedded set-up) killed, restarted and left to expire rooms.

Each test starts its own Daphne with ``scaleout.Lab`` and drives it over HTTP and WebSockets
from plain sockets (no browser): what an instructor's presses leave behind after ``kill -9``,
and whether the expiry sweeper keeps running however the first request reached the server.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboard.management.commands.scaleout import Lab
from tests.live.http import Visitor

# Every test opens rooms from 127.0.0.1.
LIMITS = {"LAB_RATE_ROOM_CREATE": "1000/60", "LAB_RATE_CONTROL": "1000/1"}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def row(db: Path, sql: str, *args: Any) -> tuple[Any, ...] | None:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchone()  # type: ignore[no-any-return]


def saved_steps(db: Path, room: str) -> int | None:
    found = row(db, "select start_steps from dashboard_labroom where id=?", room)
    return None if found is None else int(found[0])


def join_code(db: Path, room: str) -> str | None:
    found = row(db, "select code from dashboard_labroom where id=?", room)
    return None if found is None else str(found[0])


def saved_commands(db: Path, room: str) -> list[dict[str, Any]]:
    found = row(
        db,
        "select commands from dashboard_savedrun where id="
        "(select run_id from dashboard_labroom where id=?)",
        room,
    )
    assert found is not None
    return list(json.loads(found[0]))


def position(page: str) -> str:
    match = re.search(r'class="scrub-pos"[^>]*>(event \d+ / \d+)<', page)
    assert match, page[:2000]
    return match.group(1)


def test_presses_made_over_http_survive_kill_9(tmp_path: Path) -> None:
    """The room's first contact is HTTP (no WebSocket yet): the run must still be saved, with
    each command and the position where the presenter stopped, and a server killed with
    SIGKILL must bring the room back exactly there."""
    db = tmp_path / "db.sqlite3"
    with Lab(tmp_path, webs=1, redis=False, env=LIMITS) as lab:
        me = Visitor(lab.urls[0])
        room = me.open_room("producer-retry-duplicate")
        control = f"/rooms/{room}/control/"
        assert me.post(control, {"action": "fault", "fault": "drop-response:p1"})[0] == 200
        for _ in range(3):
            assert me.post(control, {"action": "step"})[0] == 200
        # Wait until the server has the three steps (the page shows where the room is).
        wait_for("the three steps", lambda: "event 3 /" in position(me.get(f"/rooms/{room}/")[2]))
        shown = position(me.get(f"/rooms/{room}/")[2])
        saved = wait_for("the position saved", lambda: saved_steps(db, room))
        [command] = saved_commands(db, room)
        assert command["label"] == "Drop the next produce response"
        lab.processes[0][1].kill()  # kill -9: no shutdown code runs
        lab.processes[0][1].wait(10)
        assert "could not save" not in lab.logs()
        assert "CurrentThreadExecutor" not in lab.logs()

    with Lab(tmp_path, webs=1, redis=False, env=LIMITS) as again:
        me.base = again.urls[0]  # same database and cookies: still this room's presenter
        status, _, page = me.get(f"/rooms/{room}/")
        assert status == 200, again.logs()
        assert position(page) == shown
        assert saved_steps(db, room) == saved


def test_the_sweeper_survives_a_first_get_and_expires_only_unwatched_rooms(tmp_path: Path) -> None:
    """The first request is a page GET (so the sweeper starts from a sync view); it must keep
    expiring idle rooms, never a watched one, and tell the watchers of a room that does."""
    env = {**LIMITS, "LAB_SWEEP_EVERY_S": "1", "LAB_ROOM_IDLE_EXPIRY_S": "3"}
    with Lab(tmp_path, webs=1, redis=False, env=env) as lab:
        me = Visitor(lab.urls[0])
        left = me.open_room("producer-idempotent")  # its page was a GET: nobody watches it
        watched = me.open_room("producer-retry-duplicate")
        db = tmp_path / "db.sqlite3"
        watched_code = join_code(db, watched)
        socket = me.websocket(f"/ws/rooms/{watched}/")
        assert "scrub-pos" in socket.receive()  # the snapshot
        wait_for("the unwatched room to expire", lambda: join_code(db, left) is None, timeout=20)
        assert me.get(f"/rooms/{left}/")[0] == 404

        # Watched for longer than its idle expiry, through several sweeps: still there.
        time.sleep(4)
        assert join_code(db, watched) == watched_code
        assert me.get(f"/r/{watched_code}/")[0] == 200

        socket.close()  # the sweep survives connections closing; now nobody watches
        wait_for("the abandoned room to expire", lambda: join_code(db, watched) is None, timeout=20)
        assert "room expiry sweep failed" not in lab.logs()


def test_a_viewer_is_told_when_the_presenter_ends_the_room(tmp_path: Path) -> None:
    with Lab(tmp_path, webs=1, redis=False, env=LIMITS) as lab:
        me = Visitor(lab.urls[0])
        room = me.open_room("producer-retry-duplicate")
        attendee = Visitor(lab.urls[0])
        status, url, _ = attendee.get(f"/r/{join_code(tmp_path / 'db.sqlite3', room)}/")
        assert status == 200 and url.endswith(f"/rooms/{room}/")
        socket = attendee.websocket(f"/ws/rooms/{room}/")
        socket.receive()

        status, url, _ = me.post(f"/rooms/{room}/end/", {})

        assert status == 200 and "/runs/" in url  # the presenter lands on the saved run
        message = wait_for("the end notice", socket.receive)
        while "ended this room" not in message:
            message = socket.receive()
        assert "The presenter ended this room. Its run is saved." in message
        assert attendee.get(f"/rooms/{room}/")[0] == 404
