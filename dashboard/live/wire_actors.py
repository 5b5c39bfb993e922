"""Real Kafka clients as the room's actors: what each ``client.id`` sent into the engine.

The gateway (``broker.wire.gateway``) tells ``Actors.saw`` of every engine request an outside
connection sends; from the Produce requests come the producer id, epoch and next sequence per
partition (the same a simulated producer's entry in the engine's snapshot shows), from the group
requests the group member ids. The room page lists them in the producers panel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.protocol import ConsumerFetchRequest, ProduceRequest
from broker.records import NO_SEQUENCE

MAX_CLIENTS = 256  # client.ids remembered per room; past this, new ones are not listed
MAX_GROUPS = 16  # group memberships remembered per client.id
MAX_POSITIONS = 256  # fetch positions remembered per client.id


@dataclass(slots=True)
class Actor:
    client_id: str
    producer_id: int = -1
    producer_epoch: int = -1
    transactional_id: str | None = None
    next_sequence: dict[str, int] = field(default_factory=dict)
    records: int = 0
    members: dict[str, str] = field(default_factory=dict)  # group id -> member id
    positions: dict[str, int] = field(default_factory=dict)  # partition -> its last fetch offset


class Actors:
    def __init__(self) -> None:
        self.by_client: dict[str, Actor] = {}

    def saw(self, conn: Any, payload: Any) -> None:
        """An engine request from the external connection ``conn`` (Gateway.on_send)."""
        actor = self.by_client.get(conn.client_id)
        if actor is None:
            if len(self.by_client) >= MAX_CLIENTS:
                return
            actor = self.by_client[conn.client_id] = Actor(conn.client_id)
        if isinstance(payload, ProduceRequest):
            batch = payload.batch
            actor.producer_id, actor.producer_epoch = batch.producer_id, batch.producer_epoch
            actor.transactional_id = payload.transactional_id or actor.transactional_id
            actor.records += batch.record_count
            if batch.base_sequence != NO_SEQUENCE:
                partition = f"{payload.tp.topic}-{payload.tp.partition}"
                actor.next_sequence[partition] = batch.base_sequence + batch.record_count
            return
        if isinstance(payload, ConsumerFetchRequest):  # a consumer's position: what it fetches
            partition = str(payload.tp)
            if partition in actor.positions or len(actor.positions) < MAX_POSITIONS:
                actor.positions[partition] = payload.fetch_offset
            return
        group, member = getattr(payload, "group_id", None), getattr(payload, "member_id", None)
        if group and member and (group in actor.members or len(actor.members) < MAX_GROUPS):
            actor.members[group] = member

    def producers(self, connected: dict[str, int]) -> list[dict[str, Any]]:
        """The clients as the producers panel reads a producer (``connected``: client.id ->
        open connections), those that wrote first."""
        out = []
        for actor in sorted(self.by_client.values(), key=lambda a: (not a.records, a.client_id)):
            count = connected.get(actor.client_id, 0)
            out.append(
                {
                    "name": actor.client_id,
                    "external": True,
                    "alive": count > 0,
                    "connections": count,
                    "producer_id": actor.producer_id,
                    "producer_epoch": actor.producer_epoch,
                    "next_sequence": dict(actor.next_sequence),
                    "transactional_id": actor.transactional_id,
                    "records": actor.records,
                    "members": sorted(actor.members.items()),
                    "positions": dict(actor.positions),
                }
            )
        return out
