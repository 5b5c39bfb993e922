"""Real Kafka clients in a room's panels (issue 14): lanes for the topics they create, their
consumers in the consumers and groups panels, their requests in the sequence diagram, and the
fault buttons that target them. Real kafka-python clients run in a thread while the room runs
on the test's event loop."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from dashboard.live.runtime import Room, registry
from dashboard.panels import consumer_panels
from dashboard.panels.consumer_panels import EXTERNAL_CONSUMERS_SHOWN
from dashboard.panels.diagram import MAX_CLIENT_COLUMNS, OTHER_CLIENTS, sequence_diagram
from dashboard.panels.faults import (
    MAX_IDLE_CLIENT_BUTTONS,
    client_fault_options,
    client_fault_refusal,
)
from dashboard.panels.lanes import MAX_CREATED_LANES
from tests.dashboard.wire_rooms import billing_consumer, listening_room, post, producer, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def the_room(room_id: str) -> Room:
    room = registry.get(room_id)
    assert room is not None
    return room


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="admin", request_timeout_ms=10_000
    )
    try:
        admin.create_topics([NewTopic(name, partitions, 3)])
    finally:
        admin.close()


def send_to(bootstrap: str, topic: str, values: list[bytes], client_id: str) -> list[int]:
    p = producer(bootstrap, client_id, acks="all")
    try:
        futures = [p.send(topic, value=v) for v in values]
        p.flush(timeout=20)
        return [f.get(timeout=1).offset for f in futures]
    finally:
        p.close(timeout=5)


def lane_names(html: str) -> list[str]:
    return re.findall(r'<h3 id="lane-title-[^"]+">([^<]+)</h3>', html)


async def test_topics_clients_create_get_lanes_after_the_scenarios_up_to_a_limit() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    room = the_room(room_id)
    wide = MAX_CREATED_LANES + 2  # CreateTopics: more partitions than the page draws lanes

    await asyncio.to_thread(create_topic, bootstrap, "wide", wide)
    offsets = await asyncio.to_thread(send_to, bootstrap, "payments", [b"1", b"2"], "shop")

    assert offsets == [0, 1]  # payments was created on first use (auto.create.topics.enable)

    def drawn() -> str | None:
        html = room.page().lanes_html
        return html if 'id="c-payments-0-1"' in html else None

    lanes = await until(drawn, "payments-0's two records drawn in its lane")
    # The scenario's topic first, then the created ones by name, as many as the limit allows.
    shown = ["payments-0", *(f"wide-{n}" for n in range(MAX_CREATED_LANES - 1))]
    assert lane_names(lanes) == ["orders-0", *shown]
    assert lanes.count("a topic created while the run goes on") == MAX_CREATED_LANES
    assert re.findall(r'<li id="c-payments-0-(\d+)"', lanes) == ["0", "1"]
    assert (
        f"3 more partitions of topics created while the run goes on (wide) have no lane: "
        f"the page draws {MAX_CREATED_LANES} of them at most."
    ) in lanes

    # "jump to offset" reads a created topic's log like the scenario's.
    response = await sync_to_async(client.get)(f"/rooms/{room_id}/lanes/payments-0/?offset=0")
    assert response.status_code == 200
    assert re.findall(r'id="c-xpayments-0-(\d+)"', response.text) == ["0", "1"], response.text
    missing = await sync_to_async(client.get)(f"/rooms/{room_id}/lanes/nowhere-0/?offset=0")
    assert missing.status_code == 404


def join_and_commit(bootstrap: str) -> KafkaConsumer:
    """A consumer in group billing-group that read orders' three records and committed them;
    still open (the caller closes it)."""
    consumer = billing_consumer(bootstrap, enable_auto_commit=False)
    read = 0
    deadline = time.monotonic() + 30
    while read < 3 and time.monotonic() < deadline:
        read += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
    assert read == 3
    consumer.commit()
    consumer.poll(timeout_ms=300)  # a Fetch at the new position
    return consumer


def pointer_rows(html: str) -> list[tuple[str, ...]]:
    """(partition, position, committed, HW) of each row of the consumers panel's tables."""
    return re.findall(
        r'<th scope="row">([^<]+)</th>\s*<td class="num">(\S+)</td>\s*'
        r'<td class="num">(\S+)</td>\s*<td class="num">(\S+)</td>',
        html,
    )


def article(html: str, article_id: str) -> str:
    found = re.search(rf'<article [^>]*id="{article_id}".*?</article>', html, re.S)
    assert found is not None, html
    return found.group(0)


async def test_a_real_consumer_shows_in_the_consumers_and_groups_panels() -> None:
    room_id, bootstrap = await listening_room(Client())
    room = the_room(room_id)
    await asyncio.to_thread(send_to, bootstrap, "orders", [b"a", b"b", b"c"], "shop")

    consumer = await asyncio.to_thread(join_and_commit, bootstrap)
    try:
        group = next(
            g for g in room.observe()["snapshot"]["groups"] if g["group"] == "billing-group"
        )
        (member,) = group["members"]
        assert member["client_id"] == "billing" and member["assignment"] == ["orders-0"]
        member_id = member["member_id"]

        def shown() -> str | None:
            html = room.page().html["consumers"]
            return html if ("orders-0", "3", "3", "3") in pointer_rows(html) else None

        consumers = await until(shown, "position 3 and committed 3 in the consumers panel")
        card = article(consumers, "consumer-client-billing-billing-group")
        assert "real client" in card
        assert f'<dd class="member-id">{member_id}</dd>' in card
        assert "<dt>group</dt><dd>billing-group</dd>" in card
        assert f"<dt>generation</dt><dd>{group['generation']}</dd>" in card
        rows = pointer_rows(card)
        assert rows == [("orders-0", "3", "3", "3")]  # position, committed, HW

        groups = room.page().html["groups"]
        assert re.search(
            rf"<th scope=\"row\">{re.escape(member_id)} .*?</th>"
            r"<td>billing <span class=\"tag\"[^>]*>real client</span></td><td>orders-0</td>",
            groups,
        ), groups
        assert '<tr><th scope="row">orders-0</th><td class="num">3</td></tr>' in groups

        # In the diagram, its group requests; not its fetches and heartbeats (logged quiet).
        def joined() -> str | None:
            svg = room.page().html["diagram"]
            return svg if ">OffsetCommit</text>" in svg else None

        svg = await until(joined, "the consumer's OffsetCommit in the diagram")
        assert ">JoinGroup</text>" in svg and ">SyncGroup</text>" in svg
        assert ">Fetch</text>" not in svg and ">Heartbeat</text>" not in svg
        assert "billing</text>" in svg and "billing#" not in svg
        # Its cursors on the lane, as a simulated consumer's.
        cursors = room.page().lanes["orders-0"].parts["cursors-orders-0"]
        assert "billing committed offset (next to read after a restart): offset 3" in cursors
        assert "billing position (next to read): offset 3" in cursors
    finally:
        await asyncio.to_thread(consumer.close)

    def left() -> str | None:
        html = room.page().html["consumers"]
        return html if "not a member now" in html else None

    card = article(
        await until(left, "the closed consumer out of the group"),
        "consumer-client-billing-billing-group",
    )
    assert f'<dd class="member-id">{member_id}</dd>' in card
    assert "no partitions assigned" not in card and "<table" not in card


def diagram_columns(svg: str) -> list[str]:
    return re.findall(r'<text class="msd-actor" [^>]*>([^<]+)</text>', svg)


async def test_the_diagram_draws_a_real_clients_requests_in_its_client_id_column() -> None:
    room_id, bootstrap = await listening_room(Client())
    room = the_room(room_id)

    offsets = await asyncio.to_thread(send_to, bootstrap, "orders", [b"a", b"b", b"c"], "shop")
    assert offsets == [0, 1, 2]

    def drawn() -> str | None:
        html = room.page().html["diagram"]
        return html if "Produce ok @0" in html else None

    svg = await until(drawn, "the Produce and its answer in the diagram")
    assert diagram_columns(svg) == ["p1", "broker-1", "broker-2", "broker-3", "shop"]
    assert svg.count(">real client</text>") == 1 and "shop#" not in svg
    leader = room.observe()["snapshot"]["partitions"][0]["leader"]
    lifelines = r'<line class="msd-life" x1="(\d+)"[^>]*/><text class="msd-actor"[^>]*>([^<]+)<'
    x = {name: cx for cx, name in re.findall(lifelines, svg)}
    request = re.search(
        r'<g class="msd-msg"><line data-seq="\d+" x1="(\d+)" [^>]*x2="(\d+)"[^>]*/>'
        r"<text [^>]*>Produce \[shop-1, shop-2, shop-3\]</text>",
        svg,
    )
    assert request is not None, svg
    assert request.groups() == (x["shop"], x[f"broker-{leader}"])
    answer = re.search(
        r'<g class="msd-msg"><line data-seq="\d+" x1="(\d+)" [^>]*x2="(\d+)"[^>]*/>'
        r"<text [^>]*>Produce ok @0</text>",
        svg,
    )
    assert answer is not None and answer.groups() == (x[f"broker-{leader}"], x["shop"])


def test_the_diagram_gives_four_clients_a_column_each_and_the_others_one_together() -> None:
    scenario = {"producers": [{"name": "p1"}], "brokers": [1], "consumers": [{"name": "billing"}]}
    events = [
        {
            "seq": n,
            "time_ms": n,
            "kind": "wire.request",
            "detail": "Fetch",
            "actor": f"c{n}#1",
            "src": f"c{n}#1",
            "dst": "broker-1",
        }
        for n in range(1, 7)
    ]
    events.append(  # a simulated consumer's instance keeps its own column
        {
            "seq": 7,
            "time_ms": 7,
            "kind": "consumer.join",
            "detail": "JoinGroup",
            "actor": "billing#2",
            "src": "billing#2",
            "dst": "broker-1",
        }
    )
    events.append(  # a known client's second connection, broken by a fault
        {
            "seq": 8,
            "time_ms": 8,
            "kind": "net.disconnect",
            "detail": "",
            "actor": "network",
            "src": "c1#2",
            "dst": "broker-1",
        }
    )

    svg = sequence_diagram(scenario, events, clients=["c1"])

    assert diagram_columns(svg) == [
        "p1",
        "broker-1",
        "c1",
        "c2",
        "c3",
        "c4",
        OTHER_CLIENTS,
        "billing#2",
    ]
    assert svg.count(">real client</text>") == MAX_CLIENT_COLUMNS + 1


def faults_html(room: Room) -> str:
    return room.page().html["faults"]


def wire_events(room: Room, kind: str) -> list[tuple[str | None, str | None, str | None]]:
    """(src, dst, error) of the engine's events of ``kind``."""
    return [(e.src, e.dst, e.error) for e in room.timeline.sim.events if e.kind == kind]


async def test_the_fault_buttons_target_a_real_client_by_its_client_id() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    room = the_room(room_id)
    shop = await asyncio.to_thread(producer, bootstrap, "shop", acks="all")
    try:
        first = await asyncio.to_thread(lambda: shop.send("orders", b"a").get(timeout=10).offset)
        assert first == 0

        def offered() -> str | None:
            html = room.page().html["faults"]
            return html if 'value="client-disconnect:shop"' in html else None

        faults = await until(offered, "shop's fault buttons")
        buttons = re.findall(
            r'<button type="submit" name="fault" value="(client-[^"]+)" '
            r'class="fault fault-real-clients" >([^<]+)</button>',
            faults,
        )
        assert buttons == [
            ("client-drop-response:shop", "Drop the next produce response to shop"),
            (
                "client-error-response:shop",
                "Answer shop&#x27;s next produce with NOT_LEADER_OR_FOLLOWER",
            ),
            ("client-delay-response:shop", "Delay the answer to shop&#x27;s next produce by 5 s"),
            ("client-disconnect:shop", "Break every connection of shop now"),
        ]

        # An error answer: kafka-python refreshes its metadata, sends again, and is answered.
        control = f"/rooms/{room_id}/control/"
        fault = {"action": "fault", "fault": "client-error-response:shop"}
        assert (await post(client, control, fault))[0] == 302
        await until(lambda: room.timeline.sim.network.rules, "the rule armed")
        second = await asyncio.to_thread(lambda: shop.send("orders", b"b").get(timeout=15).offset)
        assert second == 1
        errors = wire_events(room, "wire.response")
        assert [e for _s, _d, e in errors if e] == ["NOT_LEADER_OR_FOLLOWER"]
        answered = [(s, d) for s, d, e in errors if e]
        assert answered[0][0].startswith("broker-") and answered[0][1].startswith("shop#")

        # Break every connection of shop: the engine logs it, the gateway closes them.
        fault = {"action": "fault", "fault": "client-disconnect:shop"}
        assert (await post(client, control, fault))[0] == 302
        await until(lambda: wire_events(room, "net.disconnect"), "shop's connections broken")
        assert all(s.startswith("shop#") for s, _d, _e in wire_events(room, "net.disconnect"))
        third = await asyncio.to_thread(lambda: shop.send("orders", b"c").get(timeout=15).offset)
        assert third == 2  # it reconnects
        pressed = re.findall(r'<li><span class="t">\d+ ms</span> ([^<]+)</li>', faults_html(room))
        assert pressed == [
            "Break every connection of shop now",
            "Answer shop&#x27;s next produce with NOT_LEADER_OR_FOLLOWER",
        ]
    finally:
        await asyncio.to_thread(shop.close, 5)

    # An unknown client.id is refused, named; so is a fault kind that does not exist.
    status, text = await post(
        client, control, {"action": "fault", "fault": "client-disconnect:nobody"}
    )
    assert (status, text) == (
        400,
        "No real Kafka client 'nobody' has connected to this room (client.ids seen: 'shop').",
    )
    status, text = await post(client, control, {"action": "fault", "fault": "client-explode:shop"})
    assert status == 400 and text.startswith("There is no fault 'explode' for real Kafka clients")
    # shop is gone: its buttons stay, disabled, saying why.
    await until(lambda: "shop has no connection open" in room.page().html["faults"], "disabled")
    status, text = await post(
        client, control, {"action": "fault", "fault": "client-disconnect:shop"}
    )
    assert (status, text) == (400, "Not now: shop has no connection open.")


async def test_a_dropped_produce_response_makes_an_idempotent_client_retry_without_a_copy() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    room = the_room(room_id)
    # kafka-python 3 is idempotent by default; its request.timeout.ms is 3 s here (FAST).
    shop = await asyncio.to_thread(producer, bootstrap, "shop", acks="all")
    try:
        assert (
            await asyncio.to_thread(lambda: shop.send("orders", b"a").get(timeout=10).offset) == 0
        )
        await until(lambda: 'value="client-drop-response:shop"' in faults_html(room), "button")

        fault = {"action": "fault", "fault": "client-drop-response:shop"}
        assert (await post(client, f"/rooms/{room_id}/control/", fault))[0] == 302
        await until(lambda: room.timeline.sim.network.rules, "the rule armed")
        assert "drop-response of the 1st Produce request from shop" in faults_html(room)
        second = await asyncio.to_thread(lambda: shop.send("orders", b"b").get(timeout=20).offset)
    finally:
        await asyncio.to_thread(shop.close, 5)

    assert second == 1  # the retry was recognised by its sequence number: answered, not written
    lost = wire_events(room, "net.drop-response")
    assert len(lost) == 1 and lost[0][0].startswith("broker-") and lost[0][1].startswith("shop#")
    orders = next(p for p in room.observe()["snapshot"]["partitions"] if p["name"] == "orders-0")
    assert [r["offset"] for r in orders["records"]] == [0, 1]


def test_clients_that_closed_their_connections_keep_buttons_only_while_few_are_listed() -> None:
    clients = [{"name": f"idle-{n}", "connections": 0} for n in range(10)]
    clients.insert(5, {"name": "busy", "connections": 2})

    options = client_fault_options(clients)

    listed = list(dict.fromkeys(o.command["client"] for o in options))
    assert listed == ["busy", *(f"idle-{n}" for n in range(MAX_IDLE_CLIENT_BUTTONS - 1))]
    assert [o.available for o in options if o.command["client"] == "busy"] == [True] * 4
    assert not any(o.available for o in options if o.command["client"] != "busy")
    assert client_fault_refusal("client-disconnect:idle-9", clients) == (
        "Not now: idle-9 has no connection open."
    )
    assert client_fault_refusal("client-disconnect:shop", None) == (
        "No real Kafka client 'shop' here: this room's Kafka listeners are closed "
        "(Let real Kafka clients in opens them)."
    )
    assert client_fault_refusal("crash-broker:1", clients) == ""


def test_the_consumers_panel_shows_a_bounded_number_of_real_clients_members_current_first() -> None:
    left = [
        {"name": f"old-{n}", "connections": 0, "members": [("g", f"old-{n}-m")]} for n in range(13)
    ]
    member = {"name": "now", "connections": 1, "members": [("g", "now-m")], "positions": {}}
    group = {
        "group": "g",
        "state": "Stable",
        "generation": 4,
        "protocol": "range",
        "members": [{"member_id": "now-m", "client_id": "now", "assignment": ["orders-0"]}],
        "offsets": {"orders-0": 7},
    }
    obs = {
        "snapshot": {"consumers": [], "groups": [group], "partitions": []},
        "room": {"kafka": {"producers": [*left, member]}},
    }

    panel = consumer_panels.consumers_panel(obs)

    assert panel is not None
    cards = panel["consumers"]
    assert len(cards) == EXTERNAL_CONSUMERS_SHOWN and panel["more_external"] == 14 - len(cards)
    assert (cards[0]["member_id"], cards[0]["generation"], cards[0]["state"]) == (
        "now-m",
        4,
        "real client · 1 connection",
    )
    assert [p["committed"] for p in cards[0]["partitions"]] == [7]
    assert all(c["state"] == "real client · not a member now" for c in cards[1:])
