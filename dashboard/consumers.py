"""The WebSocket consumer: one per browser tab, kept thin.

On connect it accepts, registers with the room's runtime in this process (which then sends it
every frame directly: see ``runtime.Room.broadcast``) and sends a full snapshot frame. Frames
arriving through the channel layer group (from a runtime in another process) are only forwarded.
A message from the browser is a control, validated by the same form as the HTTP controls; a bad
one gets an error frame and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard.forms import ControlForm
from dashboard.fragments import error_frame
from dashboard.runtime import Room, registry

MAX_MESSAGE_BYTES = 4096


class RoomConsumer(AsyncWebsocketConsumer):
    room: Room | None = None

    async def connect(self) -> None:
        room = registry.get(self.scope["url_route"]["kwargs"]["room_id"])
        if room is None:
            await self.close(code=4404)
            return
        self.room = room
        await self.accept()
        # No await between attaching and building the full frame: every later frame is newer.
        room.attach(self)
        room.ensure_running()
        await self.send(text_data=room.full_frame())

    async def disconnect(self, code: int) -> None:
        if self.room is not None:
            self.room.detach(self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        room = self.room
        if room is None:
            return
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            await self.send(text_data=error_frame("Messages must be JSON text, at most 4 KiB."))
            return
        try:
            data: Any = json.loads(text_data)
        except ValueError:
            await self.send(text_data=error_frame("That message is not JSON."))
            return
        if not isinstance(data, dict):
            await self.send(text_data=error_frame("A message must be a JSON object."))
            return
        if data.get("action") == "resync":
            await self.send(text_data=room.full_frame())
            return
        fields = {k: data[k] for k in ("action", "speed", "position", "fault") if k in data}
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in fields.values()):
            await self.send(text_data=error_frame("Control fields must be text or numbers."))
            return
        form = ControlForm({k: str(v) for k, v in fields.items()}, room=room)
        if not form.is_valid():
            await self.send(text_data=error_frame(form.error_text()))
            return
        room.submit(form.control())
        room.ensure_running()

    async def room_frame(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])
