"""Scenario validation: a bad file is refused before anything runs, with an error that names
the key path and says what is wrong; a good file gets Kafka's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import INT_MAX, ClusterConfig, ProducerConfig
from broker.scenario import (
    BUILTIN_DIR,
    MAX_CONSUMERS,
    MAX_FILE_BYTES,
    ScenarioError,
    builtin_scenarios,
    load_file,
    load_text,
    step_parser,
)


def scenario(
    *,
    top: str = "",
    semantics: str = "at-least-once",
    cluster: str = "",
    topic: str = "",
    producer: str = "",
    config: str = "",
    steps: str = "",
    expected: str = "",
) -> str:
    """A small valid scenario with one topic and one producer; each part can be extended."""
    parts = [
        f'semantics = "{semantics}"' if semantics else "",
        top,
        "[cluster]",
        cluster,
        "[[topics]]",
        'name = "orders"',
        topic,
        "[[producers]]",
        'name = "p1"',
        producer,
        "[producers.config]",
        config,
        steps,
        f"[expected]\n{expected}" if expected else "",
    ]
    return "\n".join(parts) + "\n"


def step(**keys: object) -> str:
    lines = ["[[steps]]"]
    for key, value in keys.items():
        name = key.replace("__", ".")
        lines.append(f'"{name}" = {_toml(value)}')
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_text(text, "bad")
    return info.value


BAD = [
    # -- the file as a whole
    pytest.param("semantics = \n", "", "not valid TOML", id="malformed-toml"),
    pytest.param(scenario(top="colour = 1"), "colour", "unknown key", id="unknown-top-level-key"),
    pytest.param(scenario(semantics=""), "semantics", "required", id="missing-semantics"),
    pytest.param(
        scenario(semantics="maybe-once"),
        "semantics",
        "'maybe-once' is not one of: at-most-once, at-least-once, exactly-once",
        id="unknown-semantics",
    ),
    pytest.param(scenario(top='name = "two words"'), "name", "is not a valid name", id="bad-name"),
    pytest.param(
        scenario(top="duration_ms = 0"), "duration_ms", "must be at least 1", id="duration-zero"
    ),
    pytest.param(
        scenario(top="duration_ms = 86400001"),
        "duration_ms",
        "must be at most 86400000",
        id="duration-over-a-day",
    ),
    pytest.param(scenario(top="seed = -1"), "seed", "must be at least 0", id="negative-seed"),
    pytest.param(
        scenario(top='ordered = "yes"'),
        "ordered",
        "expected true or false, got a string",
        id="ordered-not-boolean",
    ),
    pytest.param(
        scenario(top=f'title = "{"t" * 201}"'),
        "title",
        "longer than 200 characters",
        id="title-too-long",
    ),
    pytest.param(
        'semantics = "at-least-once"\n[[producers]]\nname = "p1"\n',
        "topics",
        "required: declare at least one [[topics]] table",
        id="no-topics",
    ),
    pytest.param(
        'semantics = "at-least-once"\n[[topics]]\nname = "orders"\n',
        "producers",
        "required: declare at least one [[producers]] table",
        id="no-producers",
    ),
    # -- [cluster]
    pytest.param(
        scenario(cluster='"broker.session.timeout" = 1000'),
        'cluster."broker.session.timeout"',
        "unknown key (did you mean 'broker.session.timeout.ms'? expected one of: brokers, "
        "broker.session.timeout.ms,",
        id="cluster-unknown-key",
    ),
    pytest.param(
        scenario(cluster="brokers = 10"),
        "cluster.brokers",
        "must be at most 9, got 10",
        id="brokers",
    ),
    pytest.param(
        scenario(cluster="brokers = true"),
        "cluster.brokers",
        "expected an integer, got a boolean",
        id="brokers-boolean",
    ),
    pytest.param(
        scenario(cluster="latency_ms = [5, 1]"),
        "cluster.latency_ms",
        "need 0 <= min <= max <= 60000, got [5, 1]",
        id="latency-upside-down",
    ),
    pytest.param(
        scenario(cluster='latency_ms = "fast"'),
        "cluster.latency_ms",
        "expected [min, max] in milliseconds",
        id="latency-not-a-range",
    ),
    pytest.param(
        scenario(cluster='"replica.lag.time.max.ms" = 1'),
        'cluster."replica.lag.time.max.ms"',
        "must be at least 2",
        id="replica-lag-too-small",
    ),
    # -- [[topics]]
    pytest.param(
        scenario(cluster="brokers = 2", topic='"replication.factor" = 3'),
        'topics[0]."replication.factor"',
        "3 replicas need 3 brokers, the cluster has 2",
        id="replication-factor-over-brokers",
    ),
    pytest.param(
        scenario(topic='"replication.factor" = 2\n"min.insync.replicas" = 3'),
        'topics[0]."min.insync.replicas"',
        "3 is more than the replication factor 2: nothing could be acked with acks=all",
        id="min-isr-over-replication-factor",
    ),
    pytest.param(
        scenario(topic="partitions = 65"),
        "topics[0].partitions",
        "must be at most 64, got 65",
        id="too-many-partitions",
    ),
    pytest.param(
        scenario(topic="partitions = 0"),
        "topics[0].partitions",
        "must be at least 1, got 0",
        id="no-partitions",
    ),
    pytest.param(
        scenario(topic="replicas = [[1, 2]]"),
        "topics[0].replicas[0]",
        "expected 3 broker ids",
        id="assignment-too-short",
    ),
    pytest.param(
        scenario(topic="replicas = [[1, 1, 2]]"),
        "topics[0].replicas[0]",
        "distinct broker ids from 1 to 3 needed",
        id="assignment-repeats-a-broker",
    ),
    pytest.param(
        scenario(topic="partitions = 2\nreplicas = [[1, 2, 3]]"),
        "topics[0].replicas",
        "expected one list of broker ids per partition (2)",
        id="assignment-missing-a-partition",
    ),
    pytest.param(
        'semantics = "at-least-once"\n[[topics]]\nname = "__consumer_offsets"\n'
        '[[producers]]\nname = "p1"\n',
        "topics[0].name",
        "names starting with __ are internal",
        id="internal-topic-name",
    ),
    pytest.param(
        'semantics = "at-least-once"\n[[topics]]\nname = "a"\n[[topics]]\nname = "a"\n'
        '[[producers]]\nname = "p1"\n',
        "topics[1].name",
        "topic 'a' is declared twice",
        id="topic-declared-twice",
    ),
    pytest.param(
        'semantics = "at-least-once"\n'
        + "".join(f'[[topics]]\nname = "t{i}"\n' for i in range(17))
        + '[[producers]]\nname = "p1"\n',
        "topics",
        "at most 16 topics",
        id="too-many-topics",
    ),
    # -- [[producers]] and their Kafka configs
    pytest.param(
        scenario(config="ack = 1"),
        "producers[0].config.ack",
        "unknown key (did you mean 'acks'? expected one of: acks, retries,",
        id="producer-config-unknown-key",
    ),
    pytest.param(
        scenario(config="acks = 2"),
        "producers[0].config.acks",
        'expected 0, 1 or "all", got 2',
        id="acks-two",
    ),
    pytest.param(
        scenario(config='acks = "none"'),
        "producers[0].config.acks",
        "expected 0, 1 or \"all\", got 'none'",
        id="acks-word",
    ),
    pytest.param(
        scenario(config='acks = 1\n"enable.idempotence" = true'),
        'producers[0].config."enable.idempotence"',
        "true is incompatible with these settings (Kafka refuses it too): acks must be all",
        id="idempotence-with-acks-1",
    ),
    pytest.param(
        scenario(config='retries = 0\n"enable.idempotence" = true'),
        'producers[0].config."enable.idempotence"',
        "retries must be > 0",
        id="idempotence-without-retries",
    ),
    pytest.param(
        scenario(
            config='acks = 0\n"max.in.flight.requests.per.connection" = 6\n'
            '"enable.idempotence" = true'
        ),
        'producers[0].config."enable.idempotence"',
        "acks must be all; max.in.flight.requests.per.connection must be <= 5",
        id="idempotence-lists-every-conflict",
    ),
    pytest.param(
        scenario(config='"enable.idempotence" = "true"'),
        'producers[0].config."enable.idempotence"',
        "expected true or false, got a string",
        id="idempotence-not-boolean",
    ),
    pytest.param(
        scenario(config='"delivery.timeout.ms" = 1000'),
        'producers[0].config."delivery.timeout.ms"',
        "must be at least linger.ms + request.timeout.ms (30005), as Kafka requires, got 1000",
        id="delivery-timeout-below-linger-plus-request-timeout",
    ),
    pytest.param(
        scenario(config='"max.in.flight.requests.per.connection" = 0'),
        'producers[0].config."max.in.flight.requests.per.connection"',
        "must be at least 1, got 0",
        id="max-in-flight-zero",
    ),
    pytest.param(
        scenario(config="retries = -1"),
        "producers[0].config.retries",
        "must be at least 0, got -1",
        id="negative-retries",
    ),
    pytest.param(
        scenario(producer="config = 3").replace("[producers.config]\n", ""),
        "producers[0].config",
        "expected a table, got an integer",
        id="config-not-a-table",
    ),
    pytest.param(
        scenario(producer="resend_on_failure = 1"),
        "producers[0].resend_on_failure",
        "expected true or false, got an integer",
        id="resend-on-failure-not-boolean",
    ),
    pytest.param(
        scenario(producer="colour = 1"),
        "producers[0].colour",
        "unknown key (expected one of: name, config, resend_unacked_on_restart,",
        id="producer-unknown-key",
    ),
    pytest.param(
        'semantics = "at-least-once"\n[[topics]]\nname = "orders"\n'
        '[[producers]]\nname = "p1"\n[[producers]]\nname = "p1"\n',
        "producers[1].name",
        "'p1' is already taken",
        id="producer-declared-twice",
    ),
    pytest.param(
        'semantics = "at-least-once"\n[[topics]]\nname = "orders"\n'
        '[[producers]]\nname = "broker-1"\n',
        "producers[0].name",
        "'broker-1' is already taken",
        id="producer-named-like-a-broker",
    ),
    pytest.param(
        'semantics = "at-least-once"\n[[topics]]\nname = "orders"\n'
        + "".join(f'[[producers]]\nname = "p{i}"\n' for i in range(17)),
        "producers",
        "at most 16 producers",
        id="too-many-producers",
    ),
    # -- [[steps]]
    pytest.param(
        scenario(steps=step(do="explode")),
        "steps[0].do",
        "'explode' is not one of: produce, drop-request, drop-response,",
        id="unknown-step-action",
    ),
    pytest.param(scenario(steps=step(at_ms=5)), "steps[0].do", "required", id="step-without-do"),
    pytest.param(
        scenario(steps=step(do="note", at_ms=-1)),
        "steps[0].at_ms",
        "must be at least 0, got -1",
        id="negative-at-ms",
    ),
    pytest.param(
        scenario(steps=step(do="heal", broker=1)),
        "steps[0].broker",
        "unknown key (expected one of: at_ms, do, narration)",
        id="heal-takes-no-parameters",
    ),
    pytest.param(
        scenario(top="duration_ms = 1000", steps=step(do="note", at_ms=2000)),
        "steps[0].at_ms",
        "2000 ms is after duration_ms=1000",
        id="step-after-duration",
    ),
    pytest.param(
        scenario(steps=step(do="produce", producer="p2", topic="orders")),
        "steps[0].producer",
        "no producer 'p2' (declared: p1)",
        id="produce-unknown-producer",
    ),
    pytest.param(
        scenario(steps=step(do="produce", producer="p1", topic="payments")),
        "steps[0].topic",
        "no topic 'payments'",
        id="produce-unknown-topic",
    ),
    pytest.param(
        scenario(steps=step(do="produce", producer="p1", topic="orders", partition=1)),
        "steps[0].partition",
        "must be at most 0, got 1",
        id="produce-to-a-missing-partition",
    ),
    pytest.param(
        scenario(steps=step(do="produce", producer="p1", topic="orders", count=1_000_001)),
        "steps[0].count",
        "must be at most 1000000, got 1000001",
        id="too-many-records-in-one-step",
    ),
    pytest.param(
        scenario(
            steps=step(do="produce", producer="p1", topic="orders", count=600_000)
            + step(do="produce", producer="p1", topic="orders", count=600_000)
        ),
        "steps",
        "the steps produce 1200000 records; the limit is 1000000",
        id="too-many-records-in-all-steps",
    ),
    pytest.param(
        scenario(steps=step(do="note") * 2001),
        "steps",
        "at most 2000 steps",
        id="too-many-steps",
    ),
    pytest.param(
        scenario(steps=step(do="produce", producer="p1", topic="orders", value="{order}")),
        "steps[0].value",
        "bad template ('order'); use {i} and {producer} only",
        id="bad-value-template",
    ),
    pytest.param(
        scenario(steps=step(do="drop-request", partition="payments-0")),
        "steps[0].partition",
        "no topic 'payments'",
        id="fault-partition-of-a-missing-topic",
    ),
    pytest.param(
        scenario(steps=step(do="drop-request", partition="orders-1")),
        "steps[0].partition",
        "orders has partitions 0..0",
        id="fault-partition-out-of-range",
    ),
    pytest.param(
        scenario(steps=step(do="drop-request", partition="orders")),
        "steps[0].partition",
        "not a partition name (expected TOPIC-N): 'orders'",
        id="fault-partition-without-number",
    ),
    pytest.param(
        scenario(steps=step(do="drop-request", api="Metadata")),
        "steps[0].api",
        "'Metadata' is not one of: Produce, Fetch, InitProducerId",
        id="fault-unknown-api",
    ),
    pytest.param(
        scenario(steps=step(do="drop-request", probability=1.5)),
        "steps[0].probability",
        "expected a probability from 0 to 1, got 1.5",
        id="probability-over-one",
    ),
    pytest.param(
        scenario(steps=step(do="drop-request", nth=0)),
        "steps[0].nth",
        "must be at least 1, got 0",
        id="nth-zero",
    ),
    pytest.param(
        scenario(steps=step(do="delay-request")),
        "steps[0].delay_ms",
        "required",
        id="delay-without-delay-ms",
    ),
    pytest.param(
        scenario(steps=step(do="drop-request", delay_ms=5)),
        "steps[0].delay_ms",
        "only delay faults take delay_ms, not drop-request",
        id="delay-ms-on-a-drop",
    ),
    pytest.param(
        scenario(steps=step(do="error-response")),
        "steps[0].error",
        "required",
        id="error-response-without-error",
    ),
    pytest.param(
        scenario(steps=step(do="error-response", error="OUT_OF_ORDER_SEQUENCE_NUMBER")),
        "steps[0].error",
        "'OUT_OF_ORDER_SEQUENCE_NUMBER' is not one of: NOT_LEADER_OR_FOLLOWER,",
        id="error-response-with-a-non-injectable-error",
    ),
    pytest.param(
        scenario(steps=step(do="drop-response", error="REQUEST_TIMED_OUT")),
        "steps[0].error",
        "only error-response takes error, not drop-response",
        id="error-on-a-drop",
    ),
    pytest.param(
        scenario(steps=step(do="random-faults", drop_request_probability=0.1)),
        "steps[0].until_ms",
        "required",
        id="random-faults-without-until",
    ),
    pytest.param(
        scenario(steps=step(do="crash-broker")),
        "steps[0].broker",
        "required",
        id="crash-broker-without-broker",
    ),
    pytest.param(
        scenario(steps=step(do="crash-broker", broker=4)),
        "steps[0].broker",
        "no broker 4 (brokers are 1..3)",
        id="crash-a-missing-broker",
    ),
    pytest.param(
        scenario(steps=step(do="crash-broker", broker="leader:payments-0")),
        "steps[0].broker",
        "no topic 'payments'",
        id="leader-of-a-missing-topic",
    ),
    pytest.param(
        scenario(steps=step(do="crash-broker", broker="broker-1")),
        "steps[0].broker",
        "expected a broker id or \"leader:TOPIC-N\", got 'broker-1'",
        id="broker-by-name",
    ),
    pytest.param(
        scenario(steps=step(do="isolate-broker", broker=1, **{"from": "clients"})),
        "steps[0].from",
        "'clients' is not one of: brokers, all",
        id="isolate-from-unknown-side",
    ),
    pytest.param(
        scenario(steps=step(do="disconnect", client="p9")),
        "steps[0].client",
        "broker-N, got 'p9'",
        id="disconnect-unknown-client",
    ),
    pytest.param(
        scenario(steps=step(do="crash-producer", producer="p9")),
        "steps[0].producer",
        "no producer 'p9' (declared: p1)",
        id="crash-unknown-producer",
    ),
    pytest.param(
        scenario(steps=step(do="random-broker-crashes", every_ms=100, until_ms=1000)),
        "steps[0].down_ms",
        "required",
        id="random-broker-crashes-without-down-ms",
    ),
    # -- [expected]
    pytest.param(
        scenario(expected="losses = 0"),
        "expected.losses",
        "unknown key (did you mean 'lost'? expected one of: produced, acknowledged, failed, "
        "in_log, lost, duplicated, "
        "reordered",
        id="expected-unknown-count",
    ),
    pytest.param(
        scenario(expected='lost = "some"'),
        "expected.lost",
        'expected a count or a comparison such as ">= 1" or "== 0", got \'some\'',
        id="expected-not-a-comparison",
    ),
    pytest.param(
        scenario(expected="lost = -1"),
        "expected.lost",
        "a count cannot be negative: -1",
        id="expected-negative",
    ),
    pytest.param(
        scenario(expected="lost = true"),
        "expected.lost",
        "got a boolean",
        id="expected-boolean",
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment"), BAD)
def test_a_bad_scenario_names_the_key_path_and_the_problem(
    text: str, path: str, fragment: str
) -> None:
    error = error_of(text)

    assert error.path == path
    assert fragment in error.problem
    assert str(error) == (f"{path}: {error.problem}" if path else error.problem)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text(scenario() + "# " + "x" * MAX_FILE_BYTES + "\n")

    with pytest.raises(ScenarioError, match=r"larger than 256 KiB"):
        load_file(big)
    with pytest.raises(
        ScenarioError, match=r"^the scenario file is [0-9,]+ bytes; at most 262,144 \(256 KiB\)$"
    ):
        load_text(big.read_text(), "big")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(scenario(top='title = "caf\xe9"').encode("latin-1"))

    with pytest.raises(ScenarioError, match=r"not UTF-8 text"):
        load_file(path)


def test_a_missing_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"cannot read .*nope\.toml: No such file"):
        load_file(tmp_path / "nope.toml")


# -- defaults --------------------------------------------------------------
def test_defaults_are_kafkas() -> None:
    spec = load_text(scenario(), "my-file")

    assert spec.name == "my-file"
    assert spec.title == "my-file"
    assert spec.description == ""
    assert spec.seed == 1
    assert spec.duration_ms == 600_000
    assert spec.ordered is False
    assert spec.steps == ()
    assert spec.expected == {}
    assert spec.cluster == ClusterConfig(
        brokers=3,
        broker_session_timeout_ms=9000,
        replica_lag_time_max_ms=30000,
        unclean_leader_election_enable=False,
        replica_fetch_wait_max_ms=500,
        replica_fetch_backoff_ms=1000,
        replica_socket_timeout_ms=30000,
        replica_fetch_max_bytes=1_048_576,
        latency_ms=(1, 5),
    )
    assert spec.producers[0].config == ProducerConfig(
        acks=-1,
        retries=INT_MAX,
        delivery_timeout_ms=120000,
        request_timeout_ms=30000,
        max_in_flight_requests_per_connection=5,
        batch_size=16384,
        linger_ms=5,
        enable_idempotence=True,
        retry_backoff_ms=100,
        retry_backoff_max_ms=1000,
    )
    assert spec.producers[0].resend_unacked_on_restart is True
    assert spec.producers[0].resend_on_failure is False
    topic = spec.topics[0]
    assert (topic.partitions, topic.replication_factor, topic.min_insync_replicas) == (1, 3, 1)
    assert topic.assignment is None


def test_the_default_replication_factor_is_capped_by_the_brokers() -> None:
    spec = load_text(scenario(cluster="brokers = 2"), "two")

    assert spec.topics[0].replication_factor == 2


@pytest.mark.parametrize(
    ("config", "acks", "idempotent"),
    [
        ("", -1, True),
        ('acks = "all"', -1, True),
        ('acks = "-1"', -1, True),
        ("acks = -1", -1, True),
        ("acks = 1", 1, False),
        ('acks = "1"', 1, False),
        ("acks = 0", 0, False),
        ("retries = 0", -1, False),
        ('"max.in.flight.requests.per.connection" = 6', -1, False),
        ('acks = 1\n"enable.idempotence" = false', 1, False),
        ('"enable.idempotence" = false', -1, False),
        ('"enable.idempotence" = true', -1, True),
    ],
)
def test_idempotence_is_on_by_default_unless_another_setting_conflicts(
    config: str, acks: int, idempotent: bool
) -> None:
    producer_config = load_text(scenario(config=config), "t").producers[0].config

    assert producer_config.acks == acks
    assert producer_config.enable_idempotence is idempotent


def test_a_single_latency_is_a_fixed_latency() -> None:
    assert load_text(scenario(cluster="latency_ms = 7"), "t").cluster.latency_ms == (7, 7)


def test_fault_count_all_means_every_match() -> None:
    spec = load_text(scenario(steps=step(do="drop-request", count="all")), "t")

    assert spec.steps[0].params["count"] == "all"


def test_expected_counts_and_comparisons() -> None:
    spec = load_text(
        scenario(expected='lost = 0\nduplicated = ">= 1"\nacknowledged = "<3"\nin_log = " > 2 "'),
        "t",
    )

    assert {k: str(v) for k, v in spec.expected.items()} == {
        "lost": "== 0",
        "duplicated": ">= 1",
        "acknowledged": "< 3",
        "in_log": "> 2",
    }


def test_buttons_are_validated_like_steps_and_default_to_now() -> None:
    parse = step_parser(builtin_scenarios()[0])

    assert parse({"do": "crash-broker", "broker": 2}, "command", 1234).at_ms == 1234
    with pytest.raises(ScenarioError) as info:
        parse({"do": "crash-broker", "broker": 9}, "command", 0)
    assert info.value.path == "command.broker"
    assert info.value.problem == "no broker 9 (brokers are 1..3)"


# -- findings: behaviour that looks wrong, kept visible until it is fixed -----
def test_acks_as_a_float_is_refused() -> None:
    error = error_of(scenario(config="acks = 1.0"))

    assert error.path == "producers[0].config.acks"


def test_an_unset_delivery_timeout_grows_with_request_timeout_as_in_kafka() -> None:
    config = load_text(scenario(config='"request.timeout.ms" = 130000'), "t").producers[0].config

    assert config.delivery_timeout_ms == 130005


def test_a_step_after_duration_names_the_step() -> None:
    error = error_of(
        scenario(top="duration_ms = 1000", steps=step(do="note") + step(do="note", at_ms=2000))
    )

    assert error.path == "steps[1].at_ms"


def test_a_bad_fault_count_mentions_all() -> None:
    error = error_of(scenario(steps=step(do="drop-request", count="many")))

    assert error.path == "steps[0].count"
    assert '"all"' in error.problem


def consumer(**keys: object) -> str:
    lines = ["[[consumers]]"]
    for key, value in keys.items():
        text = "[" + ", ".join(_toml(v) for v in value) + "]" if isinstance(value, list) else None
        lines.append(f'"{key}" = {text or _toml(value)}')
    return "\n".join(lines) + "\n"


PROCESSOR = '[[processors]]\nname = "enricher"\noutput = "out"\n'
TWO_TOPICS = scenario(topic='[[topics]]\nname = "out"')


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        pytest.param(
            scenario(top="consumers = 3"), "consumers", "[[consumers]] tables", id="c-type"
        ),
        pytest.param(
            scenario() + consumer(name="c1", group="g", topics=["orders"]) * (MAX_CONSUMERS + 1),
            "consumers",
            f"at most {MAX_CONSUMERS} consumers",
            id="c-too-many",
        ),
        pytest.param(
            scenario() + consumer(name="c1", group="g", topics=["orders"], colour=1),
            "consumers[0].colour",
            "unknown key",
            id="c-unknown-key",
        ),
        pytest.param(
            scenario() + consumer(name="p1", group="g", topics=["orders"]),
            "consumers[0].name",
            "already taken",
            id="c-name-taken",
        ),
        pytest.param(
            scenario() + consumer(name="c1", group="g", topics=[]),
            "consumers[0].topics",
            "non-empty array of topic names",
            id="c-no-topics",
        ),
        pytest.param(
            scenario() + consumer(name="c1", group="g", topics=["nosuch"]),
            "consumers[0].topics",
            "no topic 'nosuch'",
            id="c-unknown-topic",
        ),
        pytest.param(scenario(top="processors = 3"), "processors", "[[processors]]", id="p-type"),
        pytest.param(
            TWO_TOPICS + PROCESSOR + "input = 7\n",
            "processors[0].input",
            "a topic name or an array of them",
            id="p-input-type",
        ),
        pytest.param(
            TWO_TOPICS + PROCESSOR + 'input = ["orders", "nosuch"]\n',
            "processors[0].input",
            "no topic 'nosuch'",
            id="p-unknown-input",
        ),
        pytest.param(
            TWO_TOPICS + PROCESSOR + 'input = "out"\n',
            "processors[0].output",
            "cannot write to its input",
            id="p-loop",
        ),
    ],
)
def test_a_bad_consumer_or_processor_names_its_key_path(
    text: str, path: str, fragment: str
) -> None:
    error = error_of(text)

    assert error.path == path
    assert fragment in error.problem


def test_a_processor_reads_one_input_topic_given_as_a_name() -> None:
    spec = load_text(TWO_TOPICS + PROCESSOR + 'input = "orders"\n', "ok")

    [processor] = spec.processors
    assert processor.name == "enricher"


def test_an_unquoted_dotted_kafka_name_is_explained() -> None:
    text = (BUILTIN_DIR / "producer-retry-duplicate.toml").read_text()
    bad = text.replace('"enable.idempotence" = false', "enable.idempotence = false")

    with pytest.raises(ScenarioError) as caught:
        load_text(bad, "unquoted")

    assert caught.value.path == "producers[0].config.enable"
    assert caught.value.problem == (
        'unknown key; to set enable.idempotence, quote it: "enable.idempotence" = ... '
        "(unquoted, TOML reads the dots as nested tables)"
    )


def test_a_near_miss_suggests_the_kafka_name() -> None:
    text = (BUILTIN_DIR / "producer-retry-duplicate.toml").read_text()
    bad = text.replace('"enable.idempotence" = false', '"enable.idempotency" = false')

    with pytest.raises(ScenarioError) as caught:
        load_text(bad, "typo")

    assert caught.value.problem.startswith(
        "unknown key (did you mean 'enable.idempotence'? expected one of: acks,"
    )
