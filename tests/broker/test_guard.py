"""The pre-parse guard: hostile TOML and JSON is refused by name, before a parser is hurt by it,
and every honest file (the built-in scenarios) passes far inside the limits."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from broker import guard
from broker.guard import MAX_KEY_PARTS, MAX_NESTING, check_toml, loads_json
from broker.scenario import (
    BUILTIN_DIR,
    MAX_FILE_BYTES,
    PathError,
    ScenarioError,
    builtin_names,
    load_text,
)

VALID_HEAD = """semantics = "at-least-once"
[[topics]]
name = "orders"
[[producers]]
name = "p1"
"""


def refusal(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "hostile")
    return caught.value


def test_a_40_kb_file_of_dotted_keys_is_refused_naming_the_line_and_the_limit() -> None:
    # tomllib builds a tuple for every prefix of such a key: 6 s and 1.8 GB for this file.
    text = VALID_HEAD + "a" + ".a" * 20_000 + " = 1\n"

    error = refusal(text)

    assert str(error) == "line 6: a key with 20,001 dotted parts; at most 16"


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        ("[" + ".".join(["t"] * 40) + "]", 40),  # a table header
        ("[[" + ".".join(["t"] * 17) + "]]", 17),  # an array-of-tables header
        ('"a" . "b.c" . ' + ".".join(['"q"'] * 20) + " = 1", 22),  # quoted parts, blanks
        ("x = { " + ".".join(["k"] * 30) + " = 1 }", 30),  # inside an inline table
    ],
)
def test_keys_and_table_names_of_too_many_parts_are_refused(line: str, parts: int) -> None:
    error = refusal(VALID_HEAD + "# a comment\n" + line + "\n")

    assert error.path == ""
    assert error.problem == f"line 7: a key with {parts} dotted parts; at most {MAX_KEY_PARTS}"


def test_a_key_of_exactly_the_most_parts_passes_the_guard() -> None:
    text = ".".join(["a"] * MAX_KEY_PARTS) + " = 1\n"

    check_toml(text, ScenarioError, MAX_FILE_BYTES)
    assert tomllib.loads(text)["a"]["a"]


@pytest.mark.parametrize(
    "value",
    [
        "[" * 5000 + "]" * 5000,  # RecursionError in tomllib before
        "{ a = " * 3000 + "1" + " }" * 3000,
        "[{ a = [" * 400 + "]}]" * 400,
    ],
)
def test_deep_nesting_is_refused_instead_of_a_recursion_error(value: str) -> None:
    error = refusal(VALID_HEAD + "x = " + value + "\n")

    assert error.problem == (
        f"line 6: arrays and inline tables nested more than {MAX_NESTING} deep; "
        f"at most {MAX_NESTING}"
    )


def test_nesting_at_the_limit_parses() -> None:
    text = "x = " + "[" * MAX_NESTING + "]" * MAX_NESTING + "\n"

    check_toml(text, ScenarioError, MAX_FILE_BYTES)
    assert isinstance(tomllib.loads(text)["x"], list)


def test_a_number_of_thousands_of_digits_is_refused_by_name() -> None:
    # Before: tomllib's int() raised a ValueError that escaped as a server error.
    error = refusal(VALID_HEAD + "seed = " + "7" * 5000 + "\n")

    assert error.problem == "line 6: a bare key or value of 5,000 characters; at most 100"


def test_what_strings_and_comments_hold_is_not_taken_for_keys_or_brackets() -> None:
    deep = "a." * 200 + "[" * 200 + "{" * 50 + "'''" + '"'
    text = (
        f"# {deep}\n"
        + "title = '"
        + "b." * 30
        + "[[[[{{'\n"
        + f'description = """\n{deep}"""\n'
        + VALID_HEAD
    )

    check_toml(text, ScenarioError, MAX_FILE_BYTES)
    assert load_text(text, "honest").description == deep


def test_an_unterminated_string_is_left_to_the_parser() -> None:
    error = refusal(VALID_HEAD + 'title = "never closed ' + "[" * 100 + "\n")

    assert error.problem.startswith("not valid TOML: ")


def test_a_file_too_large_is_refused_with_its_size_and_the_limit() -> None:
    error = refusal(VALID_HEAD + "# " + "x" * MAX_FILE_BYTES + "\n")

    assert error.problem == (
        f"the scenario file is {len(VALID_HEAD) + MAX_FILE_BYTES + 3:,} bytes; "
        f"at most {MAX_FILE_BYTES:,} (256 KiB)"
    )


def _depth(value: Any) -> int:
    """How deep tomllib's result nests (tables, dotted keys and arrays alike)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_scenario_passes_far_inside_the_limits(name: str) -> None:
    text = (BUILTIN_DIR / f"{name}.toml").read_text(encoding="utf-8")

    check_toml(text, ScenarioError, MAX_FILE_BYTES)
    # Keys, tables and arrays nest no more than 4 levels: a quarter of the key limit and an
    # eighth of the nesting limit.
    assert _depth(tomllib.loads(text)) <= MAX_KEY_PARTS // 4 <= MAX_NESTING // 8


# -- JSON ----------------------------------------------------------------------------------------
def json_refusal(text: str) -> str:
    with pytest.raises(PathError) as caught:
        loads_json(text, PathError, 4096, "the message")
    return str(caught.value)


def test_3_kb_of_nested_json_is_refused_by_name() -> None:
    assert json_refusal("[" * 1500 + "]" * 1500) == (
        f"line 1: lists and objects nested more than {MAX_NESTING} deep; at most {MAX_NESTING}"
    )
    assert "nested more than" in json_refusal('{"a":' * 600 + "1" + "}" * 600)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"choice": Infinity}', "Infinity is not a number JSON allows"),
        ('{"choice": -Infinity}', "-Infinity is not a number JSON allows"),
        ('{"choice": NaN}', "NaN is not a number JSON allows"),
        ('{"choice": 1e400}', "the number 1e400 is out of range"),
        ('{"choice": -1E+999}', "the number -1E+999 is out of range"),
        ('{"seed": ' + "9" * 40 + "}", "a number of 40 digits; at most 32"),
        ('{"seed": 0.' + "5" * 40 + "}", "a number of 42 characters; at most 32"),
        ('{"a": 1', "not valid JSON: Expecting ',' delimiter: line 1 column 8 (char 7)"),
        ("x" * 5000, "the message is 5,000 bytes; at most 4,096 (4 KiB)"),
        (
            '{"label": "\\ud800"}',
            "a string holds a lone surrogate escape (\\ud800 to \\udfff): not Unicode text",
        ),
        (
            '{"\\udfff": 1}',
            "a string holds a lone surrogate escape (\\ud800 to \\udfff): not Unicode text",
        ),
    ],
)
def test_numbers_no_one_means_and_bad_json_are_refused_by_name(text: str, problem: str) -> None:
    assert json_refusal(text) == problem


def test_honest_json_reads_as_json_does() -> None:
    text = (
        '{"seed": 9223372036854775807, "p": 0.25, "s": "[[[{{{", "l": [[1], {"a": null}], '
        '"e": "\\ud83d\\ude00 \\\\ud800"}'
    )

    assert loads_json(text, PathError, 4096) == {
        "seed": 2**63 - 1,
        "p": 0.25,
        "s": "[[[{{{",
        "l": [[1], {"a": None}],
        "e": "\U0001f600 \\ud800",  # a surrogate pair is one character; "\\ud800" is text
    }
    assert len(str(2**64)) <= guard.MAX_NUMBER_CHARS
