"""The WebSocket consumer: one per browser tab, kept thin.

On connect it finds the browser's role in the session (presenter or attendee), joins the
room's audience through the gateway (in this process, or a relay fed by the runtime worker)
and sends a full snapshot frame. A message from the browser is a control (presenters only,
checked here on every message, then validated like the HTTP controls), a vote, or a resync
request; a bad one gets an error frame and changes nothing.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from broker.guard import loads_json
from broker.scenario import PathError
from dashboard.live import gateway
from dashboard.live.limits import setting
from dashboard.panels.fragments import error_frame
from dashboard.workshops import ratelimit, rooms, workshop
from dashboard.workshops.forms import CONTROL_FIELDS

MAX_MESSAGE_BYTES = 4096


def _roles(session: Any, room_id: str) -> tuple[bool, str]:
    """(presenter?, voter token) from the session cookie (the room page made the token)."""
    if session is None:
        return False, ""
    return rooms.is_presenter(session, room_id), str(session.get(rooms.SESSION_VOTER, ""))


class RoomConsumer(AsyncWebsocketConsumer):
    room_id: str = ""
    presenter = False
    voter = ""
    watching = False
    # Set by the fan-out while this connection is behind (fanout.Backpressure): nothing is sent
    # to it then, and one full frame (``catch_up``) follows once it has read what it was sent.
    send_paused = False

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        if self.send_paused and not close:
            return
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def catch_up(self) -> int | None:
        """Send a full frame to a connection that fell behind and drained; its number."""
        if not self.watching:
            return None
        snap = await self._call("snapshot", room_id=self.room_id, presenter=self.presenter)
        if not snap.get("frame"):
            return None
        await self.send(text_data=snap["frame"])
        return int(snap["seq"])

    async def connect(self) -> None:
        room_id = self.scope["url_route"]["kwargs"]["room_id"]
        if settings.SESSION_COOKIE_NAME in self.scope.get("cookies", {}):
            self.presenter, self.voter = await database_sync_to_async(_roles)(
                self.scope.get("session"), room_id
            )
        limit = int(setting("LAB_MAX_CONNECTIONS_PER_ROOM", 500))
        if gateway.local_viewers(room_id) >= limit:
            await self.accept()
            await self.send(text_data=error_frame(f"This room is full ({limit} connections)."))
            await self.close(code=4429)
            return
        await self.accept()
        self.room_id = room_id
        try:
            frame = await gateway.watch(room_id, self, self.presenter)
        except gateway.RuntimeUnavailable as exc:
            await self.send(text_data=error_frame(str(exc)))
            await self.close(code=1011)
            return
        if frame is None:
            await self.send(text_data=error_frame("No such room: it may have expired."))
            await self.close(code=4404)
            return
        self.watching = True
        await self.send(text_data=frame)
        await gateway.ready(room_id, self)

    async def disconnect(self, code: int) -> None:
        if self.watching:
            self.watching = False
            await gateway.unwatch(self.room_id, self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.watching:
            return
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            await self.send(text_data=error_frame("Messages must be JSON text, at most 4 KiB."))
            return
        try:
            # Refuses deep nesting, NaN, Infinity and 1e400 by name: each would otherwise end
            # the connection with a traceback (RecursionError, OverflowError in a vote).
            data: Any = loads_json(text_data, PathError, MAX_MESSAGE_BYTES, "the message")
        except PathError as exc:
            await self.send(text_data=error_frame(f"That message was refused: {exc.problem}."))
            return
        if not isinstance(data, dict):
            await self.send(text_data=error_frame("A message must be a JSON object."))
            return
        action = data.get("action")
        if action == "resync":
            await self._resync()
            return
        if action == "vote":
            await self._vote(data)
            return
        await self._control(data)

    async def _resync(self) -> None:
        """A full frame on request (a browser that saw a gap): 19 bytes in, 15-20 KB out, so
        limited per connection and per client address."""
        if self.send_paused:
            return  # behind: a full frame comes anyway once it catches up
        if not await self._allowed("resync", self.conn_key) or not await self._allowed(
            "resync-ip", ratelimit.client_key(self.scope)
        ):
            return
        snap = await self._call("snapshot", room_id=self.room_id, presenter=self.presenter)
        await self.send(text_data=snap.get("frame") or error_frame(snap["error"]))

    async def _control(self, data: dict[str, Any]) -> None:
        if not self.presenter:
            # Refused here: an attendee's control never reaches the room.
            await self.send(text_data=error_frame(workshop.NOT_PRESENTER))
            return
        fields = {k: data[k] for k in CONTROL_FIELDS if k in data}
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in fields.values()):
            await self.send(text_data=error_frame("Control fields must be text or numbers."))
            return
        if not await self._allowed("control"):
            return
        result = await self._call(
            "control",
            room_id=self.room_id,
            fields={k: str(v) for k, v in fields.items()},
            presenter=True,
        )
        if result.get("error"):
            await self.send(text_data=error_frame(result["error"]))

    async def _vote(self, data: dict[str, Any]) -> None:
        if self.presenter:
            await self.send(text_data=error_frame(workshop.PRESENTERS_DO_NOT_VOTE))
            return
        if not self.voter:
            await self.send(text_data=error_frame("Voting needs cookies (a session)."))
            return
        question, choice = data.get("question"), data.get("choice")
        if not await self._allowed("vote") or not await self._allowed(
            "vote-ip",
            workshop.vote_ip_key(ratelimit.client_key(self.scope), self.room_id, question),
        ):
            return
        error = await database_sync_to_async(workshop.cast_vote)(
            self.room_id, question, choice, self.voter
        )
        if error:
            await self.send(text_data=error_frame(error))
            return
        await self._call("tally", room_id=self.room_id)

    async def _call(self, op: str, **args: Any) -> dict[str, Any]:
        """A runtime operation; an unreachable worker is said in an error frame."""
        try:
            return await gateway.call(op, **args)
        except gateway.RuntimeUnavailable as exc:
            return {"error": str(exc)}

    @property
    def conn_key(self) -> str:
        """A rate-limit key for this connection alone."""
        return f"{getattr(self, 'channel_name', '')} {id(self)}"

    async def _allowed(self, action: str, key: str | None = None) -> bool:
        """Within the ``action``'s rate for ``key`` (by default: this browser's session, or
        this connection without one); a refusal gets an error frame saying when to retry."""
        refusal = await workshop.arate_refusal(action, key or self.voter or self.conn_key)
        if refusal:
            await self.send(text_data=error_frame(refusal))
        return not refusal
