"""Scenario files: load, validate, and list the built-in ones.

A scenario is a TOML file (read with ``tomllib``) declaring the cluster, the
topics, the producers with their Kafka configs, a timed script of steps, the
delivery semantics it claims and the outcome it expects.  Validation is
complete before anything runs: a bad file raises ``ScenarioError`` naming the
key path and the problem.  The format is documented in docs/scenarios.md.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker import guard
from broker.assignors import STRATEGIES
from broker.checker import OUTCOME_KEYS, SEMANTICS, Expectation, parse_expectation
from broker.clients.consumer_app import (
    COMMIT_STRATEGIES,
    CRASH_POINTS,
    RESTART_FROM,
    SINK_MODES,
    ConsumerSpec,
)
from broker.clients.processor import PROCESSOR_CRASH_POINTS, PROCESSOR_OFFSETS, ProcessorSpec
from broker.config import INT_MAX, ClusterConfig, ConsumerConfig, ProducerConfig, TopicConfig
from broker.faults import APIS, FAULT_KINDS
from broker.protocol import TopicPartition

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"

# Limits on everything a scenario can grow.
MAX_FILE_BYTES = 256 * 1024
MAX_BROKERS = 9
MAX_TOPICS = 16
MAX_PARTITIONS = 64
MAX_PRODUCERS = 16
MAX_CONSUMERS = 16
MAX_STEPS = 2000
MAX_RECORDS = 1_000_000
MAX_DURATION_MS = 86_400_000
MAX_TEXT = 4000
MAX_TEMPLATE = 1024
MAX_LATENCY_MS = 60_000

# Errors a broker can be made to answer with (error-response): the ones a
# produce can meet in real life.
INJECTABLE_ERRORS = (
    "NOT_LEADER_OR_FOLLOWER",
    "REQUEST_TIMED_OUT",
    "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "KAFKA_STORAGE_ERROR",
)

STEP_ACTIONS = (
    "produce",
    *FAULT_KINDS,
    "random-faults",
    "heal",
    "isolate-broker",
    "crash-broker",
    "restart-broker",
    "random-broker-crashes",
    "crash-producer",
    "restart-producer",
    "disconnect",
    "crash-consumer",
    "restart-consumer",
    "stop-consumer",
    "stall-consumer",
    "fail-sink",
    "begin-transaction",
    "commit-transaction",
    "abort-transaction",
    "crash-processor",
    "restart-processor",
    "stall-processor",
    "configure",
    "start-consumer",
    "note",
)


class PathError(ValueError):
    """Bad input, with the path of the field at fault ("" for the whole) and the problem."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class ScenarioError(PathError):
    """A scenario file (or a command) the engine cannot run."""


@dataclass(frozen=True, slots=True)
class ProducerSpec:
    name: str
    config: ProducerConfig
    resend_unacked_on_restart: bool = True
    resend_on_failure: bool = False
    start_ms: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    at_ms: int
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    narration: str = ""

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.action} {args}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "do": self.action, **self.params, "narration": self.narration}


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    title: str
    description: str
    semantics: str
    ordered: bool
    seed: int
    duration_ms: int
    cluster: ClusterConfig
    topics: tuple[TopicConfig, ...]
    producers: tuple[ProducerSpec, ...]
    steps: tuple[Step, ...]
    expected: Mapping[str, Expectation]
    source: str = ""
    consumers: tuple[ConsumerSpec, ...] = ()
    sink: str | None = None  # the external database's name, when there is one
    processors: tuple[ProcessorSpec, ...] = ()

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Each consumer group and the topics it reads."""
        out: dict[str, tuple[str, ...]] = {}
        for consumer in self.consumers:
            group = consumer.config.group_id
            out[group] = tuple(dict.fromkeys(out.get(group, ()) + consumer.topics))
        for processor in self.processors:
            group = processor.consumer.group_id
            out[group] = tuple(dict.fromkeys(out.get(group, ()) + processor.inputs))
        return out


# -- small typed readers that name the key path on error ---------------------
def _table(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(path, f"expected a table, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in table:
        if key not in allowed:
            raise ScenarioError(_join(path, key), _unknown_key(key, table[key], allowed))


def _dotted_names(key: str, value: Any) -> list[str]:
    """The dotted names an unquoted TOML key made into nested tables (enable.idempotence = 1
    reads as {"enable": {"idempotence": 1}})."""
    if not isinstance(value, dict):
        return [key]
    return [name for sub, inner in value.items() for name in _dotted_names(f"{key}.{sub}", inner)]


def _unknown_key(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    """Why ``key`` is refused, with the likely fix: Kafka's dotted config names must be quoted
    in TOML, and a near miss is probably a typo."""
    quoted = [name for name in _dotted_names(key, value) if name in allowed]
    if quoted:
        return (
            f'unknown key; to set {quoted[0]}, quote it: "{quoted[0]}" = ... (unquoted, TOML '
            f"reads the dots as nested tables)"
        )
    near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    guess = f"did you mean {near[0]!r}? " if near else ""
    return f"unknown key ({guess}expected one of: {', '.join(allowed)})"


def _join(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}.{key}" if "." not in key else f'{path}."{key}"'


def _int(
    table: Mapping[str, Any],
    key: str,
    path: str,
    default: int | None = None,
    low: int | None = None,
    high: int | None = None,
) -> int:
    where = _join(path, key)
    if key not in table:
        if default is None:
            raise ScenarioError(where, "required")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(where, f"expected an integer, got {_kind(value)}")
    if low is not None and value < low:
        raise ScenarioError(where, f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise ScenarioError(where, f"must be at most {high}, got {value}")
    return value


def _str(
    table: Mapping[str, Any],
    key: str,
    path: str,
    default: str | None = None,
    choices: tuple[str, ...] | None = None,
    max_len: int = MAX_TEXT,
) -> str:
    where = _join(path, key)
    if key not in table:
        if default is None:
            raise ScenarioError(where, "required")
        return default
    value = table[key]
    if not isinstance(value, str):
        raise ScenarioError(where, f"expected a string, got {_kind(value)}")
    if len(value) > max_len:
        raise ScenarioError(where, f"longer than {max_len} characters")
    if choices is not None and value not in choices:
        raise ScenarioError(where, f"{value!r} is not one of: {', '.join(choices)}")
    return value


def _bool(table: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, bool):
        raise ScenarioError(_join(path, key), f"expected true or false, got {_kind(value)}")
    return value


def _name(value: str, where: str) -> str:
    if not value or not all(c.isalnum() or c in "-_." for c in value) or len(value) > 64:
        raise ScenarioError(where, f"{value!r} is not a valid name (letters, digits, - _ .)")
    return value


# -- sections ---------------------------------------------------------------
_CLUSTER_KEYS = (
    "brokers",
    "broker.session.timeout.ms",
    "replica.lag.time.max.ms",
    "unclean.leader.election.enable",
    "replica.fetch.wait.max.ms",
    "replica.fetch.backoff.ms",
    "replica.socket.timeout.ms",
    "replica.fetch.max.bytes",
    "latency_ms",
    "group.initial.rebalance.delay.ms",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "transaction.state.log.num.partitions",
    "transaction.partition.verification.enable",
)


def _client_name(table: Mapping[str, Any], path: str, taken: set[str]) -> str:
    """A client's name: valid, and not used by another client or by the cluster's own
    actors (brokers, the controller, the network) whose names share the event log."""
    name = _name(_str(table, "name", path), _join(path, "name"))
    if name in taken or name.startswith("broker-") or name in ("controller", "network"):
        raise ScenarioError(_join(path, "name"), f"{name!r} is already taken")
    taken.add(name)
    return name


def _cluster(raw: Any) -> ClusterConfig:
    path = "cluster"
    table = _table(raw, path)
    _check_keys(table, _CLUSTER_KEYS, path)
    latency: tuple[int, int] = (1, 5)
    if "latency_ms" in table:
        value = table["latency_ms"]
        where = _join(path, "latency_ms")
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise ScenarioError(where, "expected [min, max] in milliseconds")
        if not 0 <= value[0] <= value[1] <= MAX_LATENCY_MS:
            raise ScenarioError(where, f"need 0 <= min <= max <= {MAX_LATENCY_MS}, got {value}")
        latency = (value[0], value[1])
    ms = 3_600_000
    return ClusterConfig(
        brokers=_int(table, "brokers", path, 3, 1, MAX_BROKERS),
        broker_session_timeout_ms=_int(table, "broker.session.timeout.ms", path, 9000, 1, ms),
        replica_lag_time_max_ms=_int(table, "replica.lag.time.max.ms", path, 30000, 2, ms),
        unclean_leader_election_enable=_bool(table, "unclean.leader.election.enable", path, False),
        replica_fetch_wait_max_ms=_int(table, "replica.fetch.wait.max.ms", path, 500, 0, ms),
        replica_fetch_backoff_ms=_int(table, "replica.fetch.backoff.ms", path, 1000, 1, ms),
        replica_socket_timeout_ms=_int(table, "replica.socket.timeout.ms", path, 30000, 1, ms),
        replica_fetch_max_bytes=_int(table, "replica.fetch.max.bytes", path, 1_048_576, 1, 1 << 30),
        latency_ms=latency,
        group_initial_rebalance_delay_ms=_int(
            table, "group.initial.rebalance.delay.ms", path, 3000, 0, ms
        ),
        offsets_topic_num_partitions=_int(table, "offsets.topic.num.partitions", path, 1, 1, 50),
        offsets_topic_replication_factor=_int(
            table, "offsets.topic.replication.factor", path, 3, 1, MAX_BROKERS
        ),
        transaction_state_log_num_partitions=_int(
            table, "transaction.state.log.num.partitions", path, 1, 1, 50
        ),
        transaction_partition_verification_enable=_bool(
            table, "transaction.partition.verification.enable", path, True
        ),
    )


_TOPIC_KEYS = ("name", "partitions", "replication.factor", "min.insync.replicas", "replicas")


def _topics(raw: Any, brokers: int) -> tuple[TopicConfig, ...]:
    if not isinstance(raw, list) or not raw:
        raise ScenarioError("topics", "expected at least one [[topics]] table")
    if len(raw) > MAX_TOPICS:
        raise ScenarioError("topics", f"at most {MAX_TOPICS} topics")
    out: list[TopicConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"topics[{i}]"
        table = _table(item, path)
        _check_keys(table, _TOPIC_KEYS, path)
        name = _name(_str(table, "name", path), _join(path, "name"))
        if name.startswith("__"):
            raise ScenarioError(_join(path, "name"), "names starting with __ are internal")
        if name in seen:
            raise ScenarioError(_join(path, "name"), f"topic {name!r} is declared twice")
        seen.add(name)
        partitions = _int(table, "partitions", path, 1, 1, MAX_PARTITIONS)
        rf = _int(table, "replication.factor", path, min(3, brokers), 1)
        if rf > brokers:
            raise ScenarioError(
                _join(path, "replication.factor"),
                f"{rf} replicas need {rf} brokers, the cluster has {brokers}",
            )
        min_isr = _int(table, "min.insync.replicas", path, 1, 1)
        if min_isr > rf:
            raise ScenarioError(
                _join(path, "min.insync.replicas"),
                f"{min_isr} is more than the replication factor {rf}: nothing could be acked "
                "with acks=all",
            )
        assignment = None
        if "replicas" in table:
            assignment = _assignment(
                table["replicas"], _join(path, "replicas"), partitions, rf, brokers
            )
        out.append(TopicConfig(name, partitions, rf, min_isr, assignment))
    return tuple(out)


def _assignment(
    raw: Any, where: str, partitions: int, rf: int, brokers: int
) -> tuple[tuple[int, ...], ...]:
    if not isinstance(raw, list) or len(raw) != partitions:
        raise ScenarioError(where, f"expected one list of broker ids per partition ({partitions})")
    out = []
    for p, ids in enumerate(raw):
        if (
            not isinstance(ids, list)
            or len(ids) != rf
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in ids)
        ):
            raise ScenarioError(f"{where}[{p}]", f"expected {rf} broker ids")
        if len(set(ids)) != len(ids) or not all(1 <= b <= brokers for b in ids):
            raise ScenarioError(f"{where}[{p}]", f"distinct broker ids from 1 to {brokers} needed")
        out.append(tuple(ids))
    return tuple(out)


_PRODUCER_KEYS = ("name", "config", "resend_unacked_on_restart", "resend_on_failure", "start_ms")
_PRODUCER_CONFIG_KEYS = (
    "acks",
    "retries",
    "delivery.timeout.ms",
    "request.timeout.ms",
    "max.in.flight.requests.per.connection",
    "batch.size",
    "linger.ms",
    "enable.idempotence",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "metadata.max.age.ms",
    "transactional.id",
    "transaction.timeout.ms",
)


def _acks(table: Mapping[str, Any], path: str) -> int:
    if "acks" not in table:
        return -1
    value = table["acks"]
    mapping: dict[object, int] = {"all": -1, "-1": -1, "0": 0, "1": 1, -1: -1, 0: 0, 1: 1}
    if isinstance(value, (bool, float)) or value not in mapping:
        raise ScenarioError(_join(path, "acks"), f'expected 0, 1 or "all", got {value!r}')
    return mapping[value]


def idempotence_conflicts(acks: int, retries: int, max_in_flight: int) -> list[str]:
    """The settings that rule idempotence out, as KafkaProducer lists them."""
    conflicts = []
    if acks != -1:
        conflicts.append("acks must be all")
    if retries == 0:
        conflicts.append("retries must be > 0")
    if max_in_flight > 5:
        conflicts.append("max.in.flight.requests.per.connection must be <= 5")
    return conflicts


def resolve_idempotence(
    explicit: bool | None,
    conflicts: list[str],
    transactional: bool,
    idempotence_path: str,
    transactional_path: str,
) -> bool:
    """Whether the producer is idempotent, or the ConfigException Kafka throws.

    ``explicit``: ``enable.idempotence`` as set (None: not set, Kafka >= 3.2's default then
    turns idempotence on unless other settings conflict)."""
    if explicit and conflicts:
        raise ScenarioError(
            idempotence_path,
            "true is incompatible with these settings (Kafka refuses it too): "
            + "; ".join(conflicts),
        )
    idempotent = not conflicts if explicit is None else explicit
    if transactional and not idempotent:
        raise ScenarioError(
            transactional_path,
            "needs idempotence (Kafka refuses a transactional.id without it): "
            + ("; ".join(conflicts) if conflicts else "enable.idempotence is false"),
        )
    return idempotent


def producer_config(raw: Any, path: str) -> ProducerConfig:
    """Validate a producer's Kafka configs as KafkaProducer would."""
    table = _table(raw, path)
    _check_keys(table, _PRODUCER_CONFIG_KEYS, path)
    ms = 3_600_000
    acks = _acks(table, path)
    retries = _int(table, "retries", path, INT_MAX, 0, INT_MAX)
    max_in_flight = _int(table, "max.in.flight.requests.per.connection", path, 5, 1, 100)
    request_timeout = _int(table, "request.timeout.ms", path, 30000, 1, ms)
    linger = _int(table, "linger.ms", path, 5, 0, ms)
    delivery_timeout = _int(table, "delivery.timeout.ms", path, 120000, 1, ms)
    if delivery_timeout < linger + request_timeout and "delivery.timeout.ms" not in table:
        # Kafka raises an unset delivery.timeout.ms to fit, and refuses only a set one.
        delivery_timeout = linger + request_timeout
    if delivery_timeout < linger + request_timeout:
        raise ScenarioError(
            _join(path, "delivery.timeout.ms"),
            f"must be at least linger.ms + request.timeout.ms ({linger + request_timeout}), "
            f"as Kafka requires, got {delivery_timeout}",
        )
    explicit = (
        _bool(table, "enable.idempotence", path, True) if "enable.idempotence" in table else None
    )
    transactional_id = None
    if "transactional.id" in table:
        transactional_id = _name(
            _str(table, "transactional.id", path), _join(path, "transactional.id")
        )
    idempotent = resolve_idempotence(
        explicit,
        idempotence_conflicts(acks, retries, max_in_flight),
        transactional_id is not None,
        _join(path, "enable.idempotence"),
        _join(path, "transactional.id"),
    )
    return ProducerConfig(
        acks=acks,
        retries=retries,
        delivery_timeout_ms=delivery_timeout,
        request_timeout_ms=request_timeout,
        max_in_flight_requests_per_connection=max_in_flight,
        batch_size=_int(table, "batch.size", path, 16384, 1, 16 * 1024 * 1024),
        linger_ms=linger,
        enable_idempotence=idempotent,
        idempotence_set=explicit is not None,
        retry_backoff_ms=_int(table, "retry.backoff.ms", path, 100, 0, ms),
        retry_backoff_max_ms=_int(table, "retry.backoff.max.ms", path, 1000, 0, ms),
        metadata_max_age_ms=_int(table, "metadata.max.age.ms", path, 300000, 1, ms),
        transactional_id=transactional_id,
        transaction_timeout_ms=_int(table, "transaction.timeout.ms", path, 60000, 1, 900_000),
    )


def _producers(raw: Any, seen: set[str]) -> tuple[ProducerSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ScenarioError("producers", "expected at least one [[producers]] table")
    if len(raw) > MAX_PRODUCERS:
        raise ScenarioError("producers", f"at most {MAX_PRODUCERS} producers")
    out = []
    for i, item in enumerate(raw):
        path = f"producers[{i}]"
        table = _table(item, path)
        _check_keys(table, _PRODUCER_KEYS, path)
        name = _client_name(table, path, seen)
        config = producer_config(table.get("config", {}), _join(path, "config"))
        out.append(
            ProducerSpec(
                name,
                config,
                _bool(table, "resend_unacked_on_restart", path, True),
                _bool(table, "resend_on_failure", path, False),
                _int(table, "start_ms", path, 0, 0, MAX_DURATION_MS),
            )
        )
    return tuple(out)


_CONSUMER_KEYS = (
    "name",
    "group",
    "topics",
    "commit",
    "commit_every",
    "processing",
    "processing_ms",
    "sink",
    "restart_from",
    "start_ms",
    "config",
)
_CONSUMER_CONFIG_KEYS = (
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "isolation.level",
    "max.poll.records",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "fetch.max.wait.ms",
    "max.partition.fetch.bytes",
    "request.timeout.ms",
    "retry.backoff.ms",
    "partition.assignment.strategy",
)


def consumer_config(raw: Any, path: str, group: str, commit: str) -> ConsumerConfig:
    """Validate a consumer's Kafka configs as KafkaConsumer would."""
    table = _table(raw, path)
    _check_keys(table, _CONSUMER_CONFIG_KEYS, path)
    ms = 3_600_000
    auto = commit == "auto"
    enable_auto_commit = _bool(table, "enable.auto.commit", path, auto)
    if enable_auto_commit != auto:
        raise ScenarioError(
            _join(path, "enable.auto.commit"),
            f"{str(enable_auto_commit).lower()} contradicts commit = {commit!r}: use commit = "
            '"auto" for auto-commit, or leave enable.auto.commit out',
        )
    session = _int(table, "session.timeout.ms", path, 45000, 1, ms)
    heartbeat = _int(table, "heartbeat.interval.ms", path, 3000, 1, ms)
    if heartbeat >= session:
        raise ScenarioError(
            _join(path, "heartbeat.interval.ms"),
            f"must be lower than session.timeout.ms ({session}), as Kafka requires",
        )
    return ConsumerConfig(
        group_id=group,
        enable_auto_commit=enable_auto_commit,
        auto_commit_interval_ms=_int(table, "auto.commit.interval.ms", path, 5000, 1, ms),
        auto_offset_reset=_str(
            table, "auto.offset.reset", path, "latest", choices=("earliest", "latest", "none")
        ),
        isolation_level=_str(
            table,
            "isolation.level",
            path,
            "read_uncommitted",
            choices=("read_uncommitted", "read_committed"),
        ),
        max_poll_records=_int(table, "max.poll.records", path, 500, 1, 100_000),
        session_timeout_ms=session,
        heartbeat_interval_ms=heartbeat,
        max_poll_interval_ms=_int(table, "max.poll.interval.ms", path, 300000, 1, ms),
        fetch_max_wait_ms=_int(table, "fetch.max.wait.ms", path, 500, 0, ms),
        max_partition_fetch_bytes=_int(
            table, "max.partition.fetch.bytes", path, 1_048_576, 1, 1 << 30
        ),
        request_timeout_ms=_int(table, "request.timeout.ms", path, 30000, 1, ms),
        retry_backoff_ms=_int(table, "retry.backoff.ms", path, 100, 0, ms),
        partition_assignment_strategy=_str(
            table, "partition.assignment.strategy", path, "range", choices=STRATEGIES
        ),
    )


def _client_tables(
    raw: Any, section: str, keys: tuple[str, ...]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, table) for each table of an optional [[consumers]] / [[processors]] array."""
    if raw is None:
        return
    if not isinstance(raw, list):
        raise ScenarioError(section, f"expected an array of [[{section}]] tables")
    if len(raw) > MAX_CONSUMERS:
        raise ScenarioError(section, f"at most {MAX_CONSUMERS} {section}")
    for i, item in enumerate(raw):
        path = f"{section}[{i}]"
        table = _table(item, path)
        _check_keys(table, keys, path)
        yield path, table


def _topic_names(
    value: Any, where: str, topics: Mapping[str, TopicConfig], expected: str
) -> list[str]:
    """A non-empty list of names of the scenario's topics."""
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise ScenarioError(where, expected)
    for topic in value:
        if topic not in topics:
            raise ScenarioError(where, f"no topic {topic!r}")
    return value


def _consumers(
    raw: Any, topics: Mapping[str, TopicConfig], taken: set[str]
) -> tuple[ConsumerSpec, ...]:
    out = []
    for path, table in _client_tables(raw, "consumers", _CONSUMER_KEYS):
        name = _client_name(table, path, taken)
        group = _name(_str(table, "group", path), _join(path, "group"))
        subscribed = _topic_names(
            table.get("topics"),
            _join(path, "topics"),
            topics,
            "expected a non-empty array of topic names",
        )
        commit = _str(table, "commit", path, "auto", choices=COMMIT_STRATEGIES)
        sink = _str(table, "sink", path, "none", choices=SINK_MODES)
        restart_from = _str(table, "restart_from", path, "stored", choices=RESTART_FROM)
        if "restart_from" in table and sink != "offsets-with-output":
            raise ScenarioError(
                _join(path, "restart_from"),
                'only an application with sink = "offsets-with-output" stores offsets to '
                "restart from",
            )
        processing = _str(table, "processing", path, "inline", choices=("inline", "handoff"))
        if processing == "handoff" and commit not in ("auto", "none"):
            raise ScenarioError(
                _join(path, "processing"),
                f'"handoff" works with commit = "auto" or "none": with commit = {commit!r} the '
                "application would commit records its worker has not processed yet",
            )
        out.append(
            ConsumerSpec(
                name=name,
                config=consumer_config(
                    table.get("config", {}), _join(path, "config"), group, commit
                ),
                topics=tuple(dict.fromkeys(subscribed)),
                commit=commit,
                commit_every=_str(
                    table, "commit_every", path, "batch", choices=("batch", "record")
                ),
                processing=processing,
                processing_ms=_int(table, "processing_ms", path, 10, 0, 3_600_000),
                sink=sink,
                start_ms=_int(table, "start_ms", path, 0, 0, MAX_DURATION_MS),
                restart_from=restart_from,
            )
        )
    return tuple(out)


_PROCESSOR_KEYS = (
    "name",
    "group",
    "input",
    "output",
    "processing_ms",
    "start_ms",
    "offsets",
    "consumer",
    "producer",
)


def _processors(
    raw: Any, topics: Mapping[str, TopicConfig], taken: set[str]
) -> tuple[ProcessorSpec, ...]:
    out = []
    for path, table in _client_tables(raw, "processors", _PROCESSOR_KEYS):
        name = _client_name(table, path, taken)
        group = _name(_str(table, "group", path, name), _join(path, "group"))
        inputs = table.get("input")
        inputs = _topic_names(
            [inputs] if isinstance(inputs, str) else inputs,
            _join(path, "input"),
            topics,
            "expected a topic name or an array of them",
        )
        output = _str(table, "output", path)
        if output not in topics:
            raise ScenarioError(_join(path, "output"), f"no topic {output!r}")
        if output in inputs:
            raise ScenarioError(_join(path, "output"), "a processor cannot write to its input")
        consumer_table = dict(_table(table.get("consumer", {}), _join(path, "consumer")))
        consumer_table.setdefault("isolation.level", "read_committed")
        consumer_table.setdefault("enable.auto.commit", False)
        consumer = consumer_config(consumer_table, _join(path, "consumer"), group, "none")
        producer_table = dict(_table(table.get("producer", {}), _join(path, "producer")))
        producer_table.setdefault("transactional.id", f"{name}-tx")
        producer = producer_config(producer_table, _join(path, "producer"))
        out.append(
            ProcessorSpec(
                name,
                consumer,
                producer,
                tuple(dict.fromkeys(inputs)),
                output,
                _int(table, "processing_ms", path, 10, 0, 3_600_000),
                _int(table, "start_ms", path, 0, 0, MAX_DURATION_MS),
                _str(table, "offsets", path, "in-transaction", choices=PROCESSOR_OFFSETS),
            )
        )
    return tuple(out)


# -- steps -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Context:
    brokers: int
    topics: Mapping[str, TopicConfig]
    producers: frozenset[str]
    consumers: frozenset[str] = frozenset()
    processors: frozenset[str] = frozenset()
    transactional: frozenset[str] = frozenset()  # producers with a transactional.id
    consumer_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    processor_groups: frozenset[str] = frozenset()


def _context(
    brokers: int,
    topics: tuple[TopicConfig, ...],
    producers: tuple[ProducerSpec, ...],
    consumers: tuple[ConsumerSpec, ...],
    processors: tuple[ProcessorSpec, ...],
) -> _Context:
    groups: dict[str, tuple[str, ...]] = {}
    for consumer in consumers:
        group = consumer.config.group_id
        groups[group] = tuple(dict.fromkeys(groups.get(group, ()) + consumer.topics))
    return _Context(
        brokers,
        {t.name: t for t in topics},
        frozenset(p.name for p in producers),
        frozenset(c.name for c in consumers),
        frozenset(p.name for p in processors),
        frozenset(p.name for p in producers if p.config.transactional_id),
        groups,
        frozenset(p.consumer.group_id for p in processors),
    )


def _broker_ref(value: Any, where: str, ctx: _Context) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= ctx.brokers:
            raise ScenarioError(where, f"no broker {value} (brokers are 1..{ctx.brokers})")
        return value
    if isinstance(value, str) and value.startswith("leader:"):
        _partition_ref(value.removeprefix("leader:"), where, ctx)
        return value
    raise ScenarioError(where, f'expected a broker id or "leader:TOPIC-N", got {value!r}')


def _partition_ref(value: Any, where: str, ctx: _Context) -> str:
    if not isinstance(value, str):
        raise ScenarioError(where, f'expected a partition such as "orders-0", got {_kind(value)}')
    try:
        tp = TopicPartition.parse(value)
    except ValueError as exc:
        raise ScenarioError(where, str(exc)) from None
    topic = ctx.topics.get(tp.topic)
    if topic is None:
        raise ScenarioError(where, f"no topic {tp.topic!r}")
    if tp.partition >= topic.partitions:
        raise ScenarioError(where, f"{tp.topic} has partitions 0..{topic.partitions - 1}")
    return value


def _producer_ref(table: Mapping[str, Any], path: str, ctx: _Context) -> str:
    name = _str(table, "producer", path)
    if name not in ctx.producers:
        raise ScenarioError(
            _join(path, "producer"),
            f"no producer {name!r} (declared: {', '.join(sorted(ctx.producers))})",
        )
    return name


def _probability(table: Mapping[str, Any], key: str, path: str, default: float) -> float:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ScenarioError(_join(path, key), f"expected a probability from 0 to 1, got {value!r}")
    return float(value)


def _client_ref(value: Any, where: str, ctx: _Context) -> str:
    if not isinstance(value, str) or not (
        value in ctx.producers
        or value in ctx.consumers
        or value in ctx.processors
        or (
            value.startswith("broker-")
            and value[7:].isdigit()
            and 1 <= int(value[7:]) <= ctx.brokers
        )
    ):
        raise ScenarioError(
            where,
            f"expected a producer, consumer or processor name, or broker-N, got {value!r}",
        )
    return value


def _fault_params(
    table: Mapping[str, Any], path: str, ctx: _Context, action: str
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if "api" in table:
        params["api"] = _str(table, "api", path, choices=APIS)
    if "client" in table:
        params["client"] = _client_ref(table["client"], _join(path, "client"), ctx)
    if "broker" in table:
        ref = _broker_ref(table["broker"], _join(path, "broker"), ctx)
        params["broker"] = ref
    if "partition" in table:
        params["partition"] = _partition_ref(table["partition"], _join(path, "partition"), ctx)
    params["nth"] = _int(table, "nth", path, 1, 1, 1_000_000)
    count = table.get("count", 1)
    if count == "all":
        params["count"] = "all"
    elif isinstance(count, str):
        raise ScenarioError(
            _join(path, "count"), f'expected a number of matches or "all", got {count!r}'
        )
    else:
        params["count"] = _int(table, "count", path, 1, 1, 1_000_000)
    if action.startswith("delay-"):
        params["delay_ms"] = _int(table, "delay_ms", path, None, 1, 3_600_000)
    elif "delay_ms" in table:
        raise ScenarioError(
            _join(path, "delay_ms"), f"only delay faults take delay_ms, not {action}"
        )
    if action == "error-response":
        error = _str(table, "error", path, choices=INJECTABLE_ERRORS)
        params["error"] = error
        # Brokers answer a Produce with an injected error; other APIs would ignore it.
        if params.setdefault("api", "Produce") != "Produce":
            raise ScenarioError(
                _join(path, "api"),
                f"error-response applies to Produce requests, not {params['api']}",
            )
    elif "error" in table:
        raise ScenarioError(_join(path, "error"), f"only error-response takes error, not {action}")
    params["probability"] = _probability(table, "probability", path, 1.0)
    if "until_ms" in table:
        params["until_ms"] = _int(table, "until_ms", path, None, 0, MAX_DURATION_MS)
    return params


def _check_until(params: Mapping[str, Any], at_ms: int, path: str) -> None:
    until = params.get("until_ms")
    if until is not None and until < at_ms:
        raise ScenarioError(
            _join(path, "until_ms"), f"{until} ms is before the step itself ({at_ms} ms)"
        )


_COMMON_STEP_KEYS = ("at_ms", "do", "narration")
_STEP_KEYS: dict[str, tuple[str, ...]] = {
    "produce": ("producer", "topic", "count", "interval_ms", "key", "value", "partition"),
    "heal": (),
    "isolate-broker": ("broker", "from"),
    "crash-broker": ("broker",),
    "restart-broker": ("broker",),
    "random-broker-crashes": ("every_ms", "down_ms", "until_ms"),
    "crash-producer": ("producer",),
    "restart-producer": ("producer",),
    "disconnect": ("client",),
    "random-faults": (
        "api",
        "client",
        "partition",
        "drop_request_probability",
        "drop_response_probability",
        "until_ms",
    ),
    "note": (),
    "crash-consumer": ("consumer", "at", "after_records"),
    "restart-consumer": ("consumer",),
    "stop-consumer": ("consumer",),
    "stall-consumer": ("consumer", "duration_ms"),
    "fail-sink": ("count",),
    "crash-processor": ("processor", "at"),
    "restart-processor": ("processor",),
    "stall-processor": ("processor", "duration_ms"),
    "begin-transaction": ("producer",),
    "commit-transaction": ("producer",),
    "abort-transaction": ("producer",),
    "configure": (
        "producer",
        "consumer",
        "processor",
        "acks",
        "enable.idempotence",
        "max.in.flight.requests.per.connection",
        "isolation.level",
        "commit",
        "sink",
    ),
    "start-consumer": ("group", "topic"),
}
for _kind_name in FAULT_KINDS:
    _STEP_KEYS[_kind_name] = (
        "error",
        "api",
        "client",
        "broker",
        "partition",
        "nth",
        "count",
        "delay_ms",
        "probability",
        "until_ms",
    )


def parse_step(raw: Any, path: str, ctx: _Context, default_at_ms: int = 0) -> Step:
    table = _table(raw, path)
    action = _str(table, "do", path, choices=STEP_ACTIONS)
    _check_keys(table, _COMMON_STEP_KEYS + _STEP_KEYS[action], path)
    at_ms = _int(table, "at_ms", path, default_at_ms, 0, MAX_DURATION_MS)
    narration = _str(table, "narration", path, "")
    params: dict[str, Any] = {}
    if action == "produce":
        params["producer"] = _producer_ref(table, path, ctx)
        topic = _str(table, "topic", path)
        if topic not in ctx.topics:
            raise ScenarioError(_join(path, "topic"), f"no topic {topic!r}")
        params["topic"] = topic
        params["count"] = _int(table, "count", path, 1, 1, MAX_RECORDS)
        params["interval_ms"] = _int(table, "interval_ms", path, 0, 0, 3_600_000)
        if "key" in table:
            params["key"] = _template(table, "key", path)
        params["value"] = _template(table, "value", path, "v{i}")
        if "partition" in table:
            partitions = ctx.topics[topic].partitions
            params["partition"] = _int(table, "partition", path, None, 0, partitions - 1)
    elif action in FAULT_KINDS:
        params.update(_fault_params(table, path, ctx, action))
    elif action == "random-faults":
        for key in ("api",):
            if key in table:
                params[key] = _str(table, key, path, choices=APIS)
        if "client" in table:
            params["client"] = _client_ref(table["client"], _join(path, "client"), ctx)
        if "partition" in table:
            params["partition"] = _partition_ref(table["partition"], _join(path, "partition"), ctx)
        params["drop_request_probability"] = _probability(
            table, "drop_request_probability", path, 0.0
        )
        params["drop_response_probability"] = _probability(
            table, "drop_response_probability", path, 0.0
        )
        params["until_ms"] = _int(table, "until_ms", path, None, 0, MAX_DURATION_MS)
    elif action in ("crash-broker", "restart-broker", "isolate-broker"):
        if "broker" not in table:
            raise ScenarioError(_join(path, "broker"), "required")
        params["broker"] = _broker_ref(table["broker"], _join(path, "broker"), ctx)
        if action == "isolate-broker":
            params["from"] = _str(table, "from", path, "brokers", choices=("brokers", "all"))
    elif action == "random-broker-crashes":
        params["every_ms"] = _int(table, "every_ms", path, None, 1, MAX_DURATION_MS)
        params["down_ms"] = _int(table, "down_ms", path, None, 1, MAX_DURATION_MS)
        params["until_ms"] = _int(table, "until_ms", path, None, 0, MAX_DURATION_MS)
    elif action in (
        "crash-producer",
        "restart-producer",
        "begin-transaction",
        "commit-transaction",
        "abort-transaction",
    ):
        params["producer"] = _producer_ref(table, path, ctx)
    elif action == "disconnect":
        if "client" not in table:
            raise ScenarioError(_join(path, "client"), "required")
        params["client"] = _client_ref(table["client"], _join(path, "client"), ctx)
    elif action in ("crash-consumer", "restart-consumer", "stop-consumer", "stall-consumer"):
        from broker import experiment_steps  # it reads steps with this module's readers

        params["consumer"] = experiment_steps.consumer_ref(table, path, ctx)
        if action == "crash-consumer":
            params["at"] = _str(table, "at", path, "now", choices=CRASH_POINTS)
            params["after_records"] = _int(table, "after_records", path, 1, 1, MAX_RECORDS)
        elif action == "stall-consumer":
            params["duration_ms"] = _int(table, "duration_ms", path, None, 1, MAX_DURATION_MS)
    elif action == "fail-sink":
        params["count"] = _int(table, "count", path, 1, 1, 1000)
    elif action in ("configure", "start-consumer"):
        from broker import experiment_steps  # it reads steps with this module's readers

        parse = (
            experiment_steps.parse_configure
            if action == "configure"
            else experiment_steps.parse_start_consumer
        )
        params.update(parse(table, path, ctx))
    elif action in ("crash-processor", "restart-processor", "stall-processor"):
        processor = _str(table, "processor", path)
        if processor not in ctx.processors:
            declared = ", ".join(sorted(ctx.processors)) or "none"
            raise ScenarioError(
                _join(path, "processor"), f"no processor {processor!r} (declared: {declared})"
            )
        params["processor"] = processor
        if action == "crash-processor":
            params["at"] = _str(table, "at", path, "now", choices=PROCESSOR_CRASH_POINTS)
        elif action == "stall-processor":
            params["duration_ms"] = _int(table, "duration_ms", path, None, 1, MAX_DURATION_MS)
    _check_until(params, at_ms, path)
    return Step(at_ms, action, params, narration)


def _template(table: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    value = _str(table, key, path, default, max_len=MAX_TEMPLATE)
    try:
        value.format(i=0, producer="p")
    except (KeyError, IndexError, ValueError) as exc:
        raise ScenarioError(
            _join(path, key), f"bad template ({exc}); use {{i}} and {{producer}} only"
        ) from None
    return value


def _steps(raw: Any, ctx: _Context) -> tuple[Step, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ScenarioError("steps", "expected an array of [[steps]] tables")
    if len(raw) > MAX_STEPS:
        raise ScenarioError("steps", f"at most {MAX_STEPS} steps")
    steps = tuple(parse_step(item, f"steps[{i}]", ctx) for i, item in enumerate(raw))
    total = sum(s.params.get("count", 0) for s in steps if s.action == "produce")
    if total > MAX_RECORDS:
        raise ScenarioError(
            "steps", f"the steps produce {total} records; the limit is {MAX_RECORDS}"
        )
    return steps


def _expected(raw: Any) -> dict[str, Expectation]:
    if raw is None:
        return {}
    table = _table(raw, "expected")
    _check_keys(table, OUTCOME_KEYS, "expected")
    out = {}
    for key, value in table.items():
        try:
            out[key] = parse_expectation(value)
        except ValueError as exc:
            raise ScenarioError(_join("expected", key), str(exc)) from None
    return out


def _sink(raw: Any, consumers: tuple[ConsumerSpec, ...]) -> str | None:
    users = [c.name for c in consumers if c.sink != "none"]
    if raw is None:
        return "db" if users else None
    table = _table(raw, "sink")
    _check_keys(table, ("name",), "sink")
    return _name(_str(table, "name", "sink", "db"), "sink.name")


_TOP_KEYS = (
    "name",
    "title",
    "description",
    "semantics",
    "ordered",
    "seed",
    "duration_ms",
    "cluster",
    "topics",
    "producers",
    "steps",
    "expected",
    "consumers",
    "sink",
    "processors",
)


def parse_scenario(data: Mapping[str, Any], default_name: str, source: str = "") -> ScenarioSpec:
    _check_keys(data, _TOP_KEYS, "")
    name = _name(_str(data, "name", "", default_name), "name")
    cluster = _cluster(data.get("cluster", {}))
    if "topics" not in data:
        raise ScenarioError("topics", "required: declare at least one [[topics]] table")
    topics = _topics(data["topics"], cluster.brokers)
    if "producers" not in data:
        raise ScenarioError("producers", "required: declare at least one [[producers]] table")
    names: set[str] = set()
    producers = _producers(data["producers"], names)
    consumers = _consumers(data.get("consumers"), {t.name: t for t in topics}, names)
    processors = _processors(data.get("processors"), {t.name: t for t in topics}, names)
    sink_name = _sink(data.get("sink"), consumers)
    ctx = _context(cluster.brokers, topics, producers, consumers, processors)
    steps = _steps(data.get("steps"), ctx)
    duration = _int(data, "duration_ms", "", 600_000, 1, MAX_DURATION_MS)
    transactional = {p.name for p in producers if p.config.transactional_id}
    starts = any(step.action == "start-consumer" for step in steps)
    for i, step in enumerate(steps):
        consumer = step.params.get("consumer")
        if consumer is not None and consumer not in ctx.consumers and not starts:
            # A started consumer's name (c1, c2...) only means something after a start-consumer.
            declared = ", ".join(sorted(ctx.consumers)) or "none"
            raise ScenarioError(
                f"steps[{i}].consumer", f"no consumer {consumer!r} (declared: {declared})"
            )
        if step.action.endswith("-transaction") and step.params["producer"] not in transactional:
            raise ScenarioError(
                f"steps[{i}].producer",
                f"{step.params['producer']!r} has no transactional.id: {step.action} needs one",
            )
        if step.at_ms > duration:
            raise ScenarioError(
                f"steps[{i}].at_ms", f"{step.at_ms} ms is after duration_ms={duration}"
            )
    return ScenarioSpec(
        name=name,
        title=_str(data, "title", "", name, max_len=200),
        description=_str(data, "description", "", ""),
        semantics=_str(data, "semantics", "", choices=SEMANTICS),
        ordered=_bool(data, "ordered", "", False),
        seed=_int(data, "seed", "", 1, 0, 2**63 - 1),
        duration_ms=duration,
        cluster=cluster,
        topics=topics,
        producers=producers,
        steps=steps,
        expected=_expected(data.get("expected")),
        source=source,
        consumers=consumers,
        sink=sink_name,
        processors=processors,
    )


def load_text(text: str, default_name: str, source: str = "") -> ScenarioSpec:
    # Size, key length and nesting first: a small hostile file can cost tomllib seconds,
    # gigabytes or a RecursionError (see broker/guard.py).
    guard.check_toml(text, ScenarioError, MAX_FILE_BYTES, "the scenario file")
    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or a number Python will not convert
        raise ScenarioError("", f"not valid TOML: {exc}") from None
    return parse_scenario(data, default_name, source)


def load_file(path: Path) -> ScenarioSpec:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError("", f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError("", f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError("", f"{path}: not UTF-8 text") from None
    return load_text(text, path.stem, str(path))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def builtin_scenarios() -> list[ScenarioSpec]:
    return [load_file(BUILTIN_DIR / f"{name}.toml") for name in builtin_names()]


def load(name_or_path: str) -> ScenarioSpec:
    """A built-in scenario by name, or a scenario file by path."""
    if name_or_path in builtin_names():
        return load_file(BUILTIN_DIR / f"{name_or_path}.toml")
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_file(path)
    raise ScenarioError(
        "",
        f"no built-in scenario {name_or_path!r} and no such file "
        f"(built-ins: {', '.join(builtin_names())})",
    )


StepParser = Callable[[Any, str, int], Step]


def step_parser(spec: ScenarioSpec) -> StepParser:
    """Validate commands (buttons, API calls) against a loaded scenario."""
    ctx = _context(
        spec.cluster.brokers, spec.topics, spec.producers, spec.consumers, spec.processors
    )

    def parse(raw: Any, path: str, now_ms: int) -> Step:
        return parse_step(raw, path, ctx, now_ms)

    return parse


# The readers and references broker/experiment_steps.py parses its steps with.
StepContext = _Context
producer_ref = _producer_ref
acks_of = _acks
read_bool = _bool
read_int = _int
read_str = _str
join_path = _join
valid_name = _name
