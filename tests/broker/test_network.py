from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from broker.events import EventLog
from broker.faults import FaultRule
from broker.network import Connection, Exchange, Network
from broker.scheduler import Scheduler


@dataclass(frozen=True)
class Msg:
    n: int
    api: str = "Produce"


@dataclass(frozen=True)
class FetchMsg:
    n: int
    api: ClassVar[str] = "Fetch"


class Server:
    """A broker stand-in that notes each request and answers it at once."""

    def __init__(self, net: Network, name: str = "broker-1", answer: bool = True) -> None:
        self.name = name
        self.net = net
        self.up = True
        self.answer = answer
        self.got: list[tuple[int, int]] = []  # (time, n)
        self.exchanges: list[Exchange] = []
        net.register_server(self, self.handle)

    @property
    def alive(self) -> bool:
        return self.up

    def handle(self, exchange: Exchange, payload: Any) -> None:
        self.got.append((self.net.scheduler.now_ms, payload.n))
        self.exchanges.append(exchange)
        if self.answer:
            self.net.send_response(exchange, Msg(payload.n))


class Client:
    def __init__(self, net: Network, name: str = "p1") -> None:
        self.net = net
        self.name = name
        self.answers: list[tuple[int, int]] = []  # (time, n)
        self.disconnects: list[tuple[int, int]] = []  # (time, conn id)
        net.register_client(name, self.on_response, self.on_disconnect)

    def on_response(self, exchange: Exchange, payload: Any) -> None:
        self.answers.append((self.net.scheduler.now_ms, payload.n))

    def on_disconnect(self, conn: Connection) -> None:
        self.disconnects.append((self.net.scheduler.now_ms, conn.conn_id))

    def send(
        self, n: int, server: str = "broker-1", partition: str | None = "orders-0"
    ) -> Exchange:
        return self.net.send_request(self.name, server, Msg(n), partition)


def make_net(latency_ms: tuple[int, int] = (1, 1), seed: int = 1) -> Network:
    scheduler = Scheduler(seed)
    events = EventLog()
    events.bind_clock(lambda: scheduler.now_ms)
    return Network(scheduler, events, latency_ms)


def details(net: Network, kind: str) -> list[str]:
    return [e.detail for e in net.events if e.kind == kind]


def test_a_request_arrives_after_one_latency_and_its_answer_one_later() -> None:
    net = make_net((1, 1))
    server, client = Server(net), Client(net)

    client.send(1)
    net.scheduler.run_until(100)

    assert server.got == [(1, 1)]
    assert client.answers == [(2, 1)]
    assert net.stats == {"requests": 1, "responses": 1, "dropped": 0}


def test_messages_on_one_link_arrive_in_the_order_sent_despite_random_latency() -> None:
    net = make_net((1, 50), seed=3)
    server, client = Server(net), Client(net)

    for n in range(30):
        client.send(n)
    net.scheduler.run_until(10_000)

    assert [n for _t, n in server.got] == list(range(30))
    assert [n for _t, n in client.answers] == list(range(30))
    times = [t for t, _n in server.got]
    assert times == sorted(times)


def test_drop_request_loses_the_nth_match_and_stalls_the_connection() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    rule = FaultRule("drop-request", api="Produce", nth=2)
    net.arm(rule)

    exchanges = [client.send(n) for n in (1, 2, 3)]
    net.scheduler.run_until(100)

    assert server.got == [(1, 1)]
    assert (rule.seen, rule.hit, rule.exhausted) == (2, 1, True)
    assert details(net, "net.drop-request") == [
        "Produce #2 p1 -> broker-1 lost",
        "Produce #3 p1 -> broker-1 connection stalled",
    ]
    assert exchanges[2].conn.stalled_requests is True
    assert net.stats["dropped"] == 2


def test_closing_a_stalled_connection_lets_the_next_request_through() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    net.arm(FaultRule("drop-request"))
    lost = client.send(1)

    net.close(lost.conn, notify_client=False)
    retried = client.send(2)
    net.scheduler.run_until(100)

    assert server.got == [(1, 2)]
    assert retried.conn.conn_id == lost.conn.conn_id + 1
    assert client.disconnects == []


def test_drop_response_lets_the_broker_act_and_loses_the_answer() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    net.arm(FaultRule("drop-response", api="Produce", partition="orders-0"))

    client.send(1)
    client.send(2)
    net.scheduler.run_until(100)

    assert server.got == [(1, 1), (1, 2)]
    assert client.answers == []
    assert details(net, "net.drop-response") == [
        "Produce #1 broker-1 -> p1 lost",
        "Produce #2 broker-1 -> p1 connection stalled",
    ]


def test_delay_request_holds_the_message_and_later_ones_queue_behind_it() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    net.arm(FaultRule("delay-request", delay_ms=100))

    client.send(1)
    client.send(2)
    net.scheduler.run_until(1000)

    assert server.got == [(101, 1), (101, 2)]


def test_delay_response_holds_the_answer() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    net.arm(FaultRule("delay-response", delay_ms=40))

    client.send(1)
    client.send(2)
    net.scheduler.run_until(1000)

    assert server.got == [(1, 1), (1, 2)]
    assert client.answers == [(42, 1), (42, 2)]


def test_error_response_marks_the_exchange_with_the_error() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    net.arm(FaultRule("error-response", error="NOT_ENOUGH_REPLICAS"))

    first = client.send(1)
    second = client.send(2)
    net.scheduler.run_until(100)

    assert first.injected_error == "NOT_ENOUGH_REPLICAS"
    assert second.injected_error is None
    assert len(server.got) == 2


def test_count_hits_that_many_matches_from_the_nth_on() -> None:
    net = make_net()
    Server(net)
    client = Client(net)
    rule = FaultRule("error-response", error="NOT_ENOUGH_REPLICAS", nth=2, count=2)
    net.arm(rule)

    exchanges = [client.send(n) for n in range(1, 6)]

    assert [e.injected_error is not None for e in exchanges] == [False, True, True, False, False]
    assert rule.hit == 2


def test_count_none_hits_every_match_until_healed() -> None:
    net = make_net()
    Server(net)
    client = Client(net)
    net.arm(FaultRule("error-response", error="REQUEST_TIMED_OUT", count=None))

    hit = [client.send(n).injected_error for n in range(4)]
    net.heal()
    after = client.send(9).injected_error

    assert hit == ["REQUEST_TIMED_OUT"] * 4
    assert after is None
    assert net.rules == []


def test_a_rule_only_counts_requests_it_matches() -> None:
    net = make_net()
    Server(net, "broker-1")
    Server(net, "broker-2")
    client = Client(net)
    rule = FaultRule("error-response", error="NOT_ENOUGH_REPLICAS", dst="broker-2", src="p1")
    net.arm(rule)
    Client(net, "p2").send(1, server="broker-2")

    misses = [client.send(1, "broker-1"), client.send(2, "broker-2", partition="orders-1")]
    fetch = net.send_request("p1", "broker-2", FetchMsg(3), "orders-0")

    assert [e.injected_error for e in misses] == [None, "NOT_ENOUGH_REPLICAS"]
    assert fetch.injected_error is None
    assert (rule.seen, rule.hit) == (1, 1)


def test_a_rule_with_a_partition_and_api_ignores_other_ones() -> None:
    rule = FaultRule("drop-request", api="Produce", partition="orders-0")

    assert rule.matches("Produce", "p1", "broker-1", "orders-0")
    assert not rule.matches("Fetch", "p1", "broker-1", "orders-0")
    assert not rule.matches("Produce", "p1", "broker-1", "orders-1")
    assert not rule.matches("Produce", "p1", "broker-1", None)


def test_a_rule_past_until_ms_no_longer_applies() -> None:
    net = make_net()
    Server(net)
    client = Client(net)
    net.arm(FaultRule("error-response", error="NOT_ENOUGH_REPLICAS", count=None, until_ms=10))

    early = client.send(1)
    net.scheduler.run_until(11)
    late = client.send(2)

    assert early.injected_error == "NOT_ENOUGH_REPLICAS"
    assert late.injected_error is None


def test_probability_rules_hit_the_same_requests_for_the_same_seed() -> None:
    def hits(seed: int) -> list[bool]:
        net = make_net(seed=seed)
        Server(net)
        client = Client(net)
        net.arm(FaultRule("error-response", error="REQUEST_TIMED_OUT", count=None, probability=0.5))
        return [client.send(n).injected_error is not None for n in range(40)]

    first = hits(5)

    assert first == hits(5)
    assert 0 < sum(first) < 40


def test_a_request_to_a_crashed_broker_gets_a_disconnect_one_latency_later() -> None:
    net = make_net((3, 3))
    server, client = Server(net), Client(net)
    server.up = False

    exchange = client.send(1)
    net.scheduler.run_until(100)

    assert server.got == []
    assert exchange.conn.open is False
    assert client.disconnects == [(3, exchange.conn.conn_id)]


def test_a_broker_crash_breaks_its_connections_and_loses_requests_in_flight() -> None:
    net = make_net((5, 5))
    server, client = Server(net), Client(net)
    exchange = client.send(1)
    net.scheduler.run_until(2)

    server.up = False
    net.close_server("broker-1")
    net.scheduler.run_until(100)

    assert server.got == []
    assert client.disconnects == [(7, exchange.conn.conn_id)]


def test_isolated_links_drop_requests_both_ways() -> None:
    net = make_net()
    b1 = Server(net, "broker-1")
    b2 = Server(net, "broker-2")
    Client(net, "broker-1")
    Client(net, "broker-2")

    net.isolate("broker-1", ["broker-2"])
    net.send_request("broker-1", "broker-2", Msg(1), "orders-0")
    net.send_request("broker-2", "broker-1", Msg(2), "orders-0")
    net.scheduler.run_until(100)

    assert b1.got == [] and b2.got == []
    assert details(net, "net.drop-request") == [
        "Produce #1 broker-1 -> broker-2 lost",
        "Produce #2 broker-2 -> broker-1 lost",
    ]


def test_an_isolated_server_acts_on_requests_that_arrived_but_its_answers_are_lost() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    net.isolate("broker-1", ["p1"])
    net.blocked.discard(("p1", "broker-1"))  # only the way back is cut

    client.send(1)
    net.scheduler.run_until(100)

    assert server.got == [(1, 1)]
    assert client.answers == []
    assert details(net, "net.drop-response") == ["Produce #1 broker-1 -> p1 lost"]


def test_disconnect_client_breaks_its_connections_and_tells_it() -> None:
    net = make_net((2, 2))
    server = Server(net, answer=False)
    client = Client(net)
    exchange = client.send(1)

    net.disconnect_client("p1")
    net.scheduler.run_until(100)

    assert client.disconnects == [(2, exchange.conn.conn_id)]
    assert server.got == []  # the request arrived on a closed connection
    assert details(net, "net.disconnect") == ["p1 -> broker-1 connection broken"]


def test_a_gone_client_hears_nothing_but_its_request_on_the_wire_still_arrives() -> None:
    net = make_net()
    server, client = Server(net), Client(net)
    client.send(1)

    net.unregister_client("p1")
    net.scheduler.run_until(100)

    assert [n for _time, n in server.got] == [1]  # sent before the crash
    assert client.answers == [] and client.disconnects == []


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (
            FaultRule("drop-response", api="Produce", partition="orders-0"),
            "drop-response of the 1st Produce request to orders-0",
        ),
        (
            FaultRule("drop-request", api="Produce", src="p1", dst="broker-1", nth=2),
            "drop-request of the 2nd Produce request from p1 at broker-1",
        ),
        (
            FaultRule("delay-request", api="Fetch", nth=3, count=4, delay_ms=10),
            "delay-request by 10 ms of 4 Fetch requests from the 3rd on",
        ),
        (
            FaultRule(
                "error-response", api="Produce", nth=11, count=None, error="NOT_ENOUGH_REPLICAS"
            ),
            "answer NOT_ENOUGH_REPLICAS to every Produce request from the 11th on",
        ),
        (
            FaultRule("drop-request", api="Produce", count=None, probability=0.25),
            "drop-request of each Produce request with probability 0.25",
        ),
        (FaultRule("drop-request", nth=22), "drop-request of the 22nd request"),
        (FaultRule("drop-request", nth=13), "drop-request of the 13th request"),
        (FaultRule("drop-request", nth=101), "drop-request of the 101st request"),
    ],
)
def test_fault_rule_describe(rule: FaultRule, text: str) -> None:
    assert rule.describe() == text


def test_fault_rule_describe_of_every_request_of_any_api_reads_as_english() -> None:
    assert FaultRule("drop-request", count=None).describe() == "drop-request of every request"
