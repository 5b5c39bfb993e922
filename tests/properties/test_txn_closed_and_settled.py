"""Two guarantee violations the transaction properties found with more random examples than
the ci profile runs (issue 12, mechanism 6), kept as literal schedules.

D. A closed transactional producer kept retrying InitProducerId. Found by
   test_transactions_are_atomic_under_producer_and_broker_crashes (2,000 examples,
   --hypothesis-seed=20261206). Every broker is down from 0 ms; p1's initTransactions keeps
   looking for a coordinator. At 16 s the brokers come back and p1 is crashed and restarted:
   the new instance gets epoch 0, but the crashed one's InitProducerId went on being
   rescheduled (TransactionManager._send did not check that the producer was closed), landed
   next, bumped the epoch to 1, and fenced the live instance: its only transaction ended
   PRODUCER_FENCED. A closed producer sends nothing.

E. The run was judged while a transaction was still Ongoing. Found by
   test_read_process_write_is_exactly_once_end_to_end. Broker 1 (the first coordinator)
   crashes at 900 ms for good; e1 crashes after writing an output, so its transaction stays
   Ongoing and holds the last stable offset of enriched-0. e2 redoes the work, but its
   committed outputs sit above that LSO. Simulation.settled() only waited for Prepare*
   states, so the run ended "settled" at 36,220 ms with 15 messages "lost"; the coordinator
   aborts e1's transaction at transaction.timeout.ms (60 s after it began, 92,040 ms) and
   then the downstream reader gets them all. A run now settles only once no live coordinator
   has an Ongoing transaction.

Both were reduced from the printed schedules by deleting steps while the failure stayed
(D: the three brokers are restarted, not only the one that the reduction kept, so p1's last
transaction can commit).
"""

from __future__ import annotations

from txn_schedules import run_watched

from broker.scenario import load_text

_CLUSTER = """
[cluster]
brokers = 3
"group.initial.rebalance.delay.ms" = 0
"broker.session.timeout.ms" = 1000
"replica.lag.time.max.ms" = 1000
"replica.socket.timeout.ms" = 1000
"""
_TOPIC = """
[[topics]]
name = "{name}"
partitions = {partitions}
"replication.factor" = 3
"min.insync.replicas" = 2
"""
_READ_COMMITTED = """
[[consumers]]
name = "{name}"
group = "{group}"
topics = ["{topic}"]
commit = "after-processing"
processing_ms = 0
[consumers.config]
"auto.offset.reset" = "earliest"
"isolation.level" = "read_committed"
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 2000
"""


def _steps(*steps: str) -> str:
    return "".join(f"\n[[steps]]\n{step.strip()}\n" for step in steps)


CLOSED_PRODUCER_RETRIES = (
    """
name = "txn-closed-producer-retries"
semantics = "exactly-once"
seed = 0
duration_ms = 81000
"""
    + _CLUSTER
    + _TOPIC.format(name="orders", partitions=1)
    + """
[[producers]]
name = "p1"
[producers.config]
acks = "all"
"transactional.id" = "p1-tx"
"linger.ms" = 0
"request.timeout.ms" = 1000
"""
    + _READ_COMMITTED.format(name="reader", group="billing", topic="orders")
    + _steps(
        'at_ms = 0\ndo = "crash-broker"\nbroker = 1',
        'at_ms = 0\ndo = "crash-broker"\nbroker = 2',
        'at_ms = 0\ndo = "crash-broker"\nbroker = 3',
        'at_ms = 16000\ndo = "restart-broker"\nbroker = 1',
        'at_ms = 16000\ndo = "restart-broker"\nbroker = 2',
        'at_ms = 16000\ndo = "restart-broker"\nbroker = 3',
        'at_ms = 16000\ndo = "crash-producer"\nproducer = "p1"',
        'at_ms = 16000\ndo = "restart-producer"\nproducer = "p1"',
        'at_ms = 17000\ndo = "begin-transaction"\nproducer = "p1"',
        'at_ms = 17000\ndo = "produce"\nproducer = "p1"\ntopic = "orders"\ncount = 1\n'
        'partition = 0\nkey = "final-{i}"',
        'at_ms = 17500\ndo = "commit-transaction"\nproducer = "p1"',
    )
)


def test_a_closed_transactional_producer_sends_nothing_and_fences_no_one() -> None:
    sim, watch = run_watched(load_text(CLOSED_PRODUCER_RETRIES, "closed-producer-retries"))
    inits = [
        e.time_ms
        for e in sim.events
        if e.kind == "txn.request" and e.detail.startswith("InitProducerId")
    ]
    # The first instance asked every retry.backoff.ms while no coordinator was up; from its
    # crash at 16 s on, only the new instance's one request goes out.
    assert [t for t in inits if t >= 16000] == [16000]
    epochs = [e.detail for e in sim.events if e.kind == "txn.state"]
    assert epochs[0] == "p1-tx: Empty -> Empty (PID 0 epoch 0)"
    assert not [d for d in epochs if "epoch 1" in d], epochs
    assert not [e for e in sim.events if e.kind in ("app.fenced", "txn.fenced")]
    assert watch.committed == [frozenset({"p1-0"})]
    assert sim.committed_logs()["orders-0"] == [(0, "p1-0")]
    [marker] = [e for e in sim.events if e.kind == "txn.marker"]
    assert (marker.partition, marker.offset, marker.detail.split()[0]) == (
        "orders-0",
        1,
        "COMMIT",
    )
    assert sim.ended == "settled"
    assert sim.verdict().outcome["processed"] == 1


_PROCESSOR = """
[[processors]]
name = "{name}"
group = "enricher"
input = "orders"
output = "enriched"
processing_ms = 0
start_ms = 0
[processors.consumer]
"auto.offset.reset" = "earliest"
"session.timeout.ms" = 2000
"heartbeat.interval.ms" = 100
"max.poll.records" = 1
[processors.producer]
"linger.ms" = 0
"request.timeout.ms" = 1000
"""

SETTLED_WHILE_ONGOING = (
    """
name = "txn-settled-while-ongoing"
semantics = "exactly-once"
seed = 0
duration_ms = 96000
"""
    + _CLUSTER
    + "latency_ms = 20\n"
    + _TOPIC.format(name="orders", partitions=2)
    + _TOPIC.format(name="enriched", partitions=1)
    + """
[[producers]]
name = "p1"
[producers.config]
acks = "all"
"linger.ms" = 0
"request.timeout.ms" = 1000
"""
    + _PROCESSOR.format(name="e1")
    + _PROCESSOR.format(name="e2")
    + _READ_COMMITTED.format(name="downstream", group="downstream", topic="enriched")
    + _steps(
        'at_ms = 208\ndo = "produce"\nproducer = "p1"\ntopic = "orders"\ncount = 7\n'
        'interval_ms = 0\nkey = "order-{i}"',
        'at_ms = 900\ndo = "crash-broker"\nbroker = 1',
        'at_ms = 3101\ndo = "crash-processor"\nprocessor = "e1"\nat = "after-produce"',
    )
)


def test_a_run_settles_only_after_the_coordinator_ends_an_open_transaction() -> None:
    sim, _watch = run_watched(load_text(SETTLED_WHILE_ONGOING, "settled-while-ongoing"))
    [crash] = [e for e in sim.events if e.kind == "app.crash" and e.actor == "e1"]
    assert crash.detail.startswith("crashed after produce; its transaction is left open")
    [timeout] = [e for e in sim.events if e.kind == "txn.timeout"]
    assert (timeout.time_ms, timeout.detail.split(":")[0]) == (92040, "e1-tx")
    assert crash.time_ms < 36220 < timeout.time_ms  # 36,220 ms: where it used to settle
    # The coordinator's ABORT ends e1's transaction: the last record of enriched-0, after
    # e2's committed outputs, which the reader gets only now.
    [abort] = [e for e in sim.events if e.kind == "txn.marker" and "ABORT" in e.detail]
    end = sim.read_records("enriched-0", 0, 0)["log_end_offset"]
    assert (abort.partition, abort.offset) == ("enriched-0", end - 1)
    assert sim.ended == "settled" and sim.now_ms > abort.time_ms
    outcome = sim.verdict().outcome
    assert (outcome["lost"], outcome["duplicated"], outcome["processed"]) == (0, 0, 7), outcome
    # e2 redid e1's order p1-1 once; the seven results are readable, each once.
    outputs = [m for _o, m in sim.committed_logs()["enriched-0"]]
    assert sorted(outputs) == [f"p1-{i}>enriched" for i in range(7)]
