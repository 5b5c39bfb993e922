"""Cheap checks on TOML and JSON text from users, made before a parser sees it.

``tomllib`` and ``json`` are fine parsers for honest files, but a small hostile one can hurt
them: a key of 20,000 dotted parts (``a.a.a...=1``) makes ``tomllib`` build a tuple for every
prefix of the key (seconds of CPU and gigabytes for a 40 KB file), a few thousand nested
brackets raise ``RecursionError`` from either parser, and a number of thousands of digits
costs a quadratic conversion before Python refuses it with a ``ValueError`` nobody expects.

The scans here read the text once, the regular expression engine doing the inner loops, and
refuse such input with the limit it broke and where ("line 3: a key with 40 dotted parts; at
most 16"), raising the caller's ``PathError`` class. The limits sit far above anything a real
scenario or run file holds (the built-in scenarios use keys of at most 2 parts and nest
brackets 2 deep), so an honest file never meets them. A scan does not validate: text that
passes may still be refused by the parser, with the parser's own message.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.scenario import PathError

# Parts of one dotted key or table name: [a.b.c] and a.b.c = 1 have 3.
MAX_KEY_PARTS = 16
# Arrays and inline tables (TOML), lists and objects (JSON) open at once.
MAX_NESTING = 32
# One bare word outside strings (a bare key, a number, a date, true): a 64-bit integer with
# underscores takes at most 26 characters, a date-time some 35.
MAX_WORD_CHARS = 100
# Characters of one JSON number (a seed up to 2**63 - 1 has 19 digits).
MAX_NUMBER_CHARS = 32

_WORD = r"[A-Za-z0-9_-]"
_SHORT_WORD = rf"{_WORD}{{1,{MAX_WORD_CHARS}}}+(?!{_WORD})"
_QUOTED_KEY = r'"(?:[^"\\\n]++|\\.)*+"' + r"|'[^'\n]*+'"
_DOT = r"[ \t]*\.[ \t]*"
_LONG_KEY = rf"(?:{_WORD}++|{_QUOTED_KEY})(?:{_DOT}(?:{_WORD}++|{_QUOTED_KEY})){{{MAX_KEY_PARTS}}}"
_KEY = rf"(?:{_SHORT_WORD}|{_QUOTED_KEY})(?:{_DOT}(?:{_SHORT_WORD}|{_QUOTED_KEY}))*+"
_TRIPLE_BASIC = r'"""(?:[^"\\]++|\\.|"(?!""))*+(?:"""(?:""?)?)?'
_TRIPLE_LITERAL = r"'''(?:[^']++|'(?!''))*+(?:'''(?:''?)?)?"
# A quote that never closes on its line: not a key, and the parser refuses it.
_UNTERMINATED = r'"(?:[^"\\\n]++|\\.)*+(?!")' + r"|'[^'\n]*+(?!')"
_COMMENT = r"#[^\n]*+"
# One match from the start consumes everything in a TOML text that cannot hurt the parser (the
# regex engine loops in C) and stops at the first key of too many dotted parts or overlong word.
# Multi-line strings come first (a quoted key "" must not open them), strings and comments are
# consumed whole (so what they hold is never taken for keys), and a key, with its dotted parts,
# is consumed in one go once the lookahead found it short (which keeps the scan linear).
_TOML_KEYS = re.compile(
    "(?:"
    + "|".join(
        (
            r"[^\"'#A-Za-z0-9_-]++",
            _TRIPLE_BASIC,
            _TRIPLE_LITERAL,
            rf"(?!{_LONG_KEY}){_KEY}",
            _UNTERMINATED,
            _COMMENT,
        )
    )
    + rf")*+(?:(?P<long_key>{_LONG_KEY})|(?P<long_word>{_WORD}+))?"
)
_MORE_PARTS = re.compile(rf"(?:{_DOT}(?:{_WORD}++|{_QUOTED_KEY}))*+")
_ONE_PART = re.compile(rf"{_WORD}++|{_QUOTED_KEY}")
# What a nesting count skips: strings and comments (replaced by the newlines they held).
_TOML_TEXT = re.compile(
    "|".join((_TRIPLE_BASIC, _TRIPLE_LITERAL, r'"(?:[^"\\\n]++|\\.)*+"?', r"'[^'\n]*+'?", _COMMENT))
)
_JSON_TEXT = re.compile(r'"(?:[^"\\\n]++|\\[^\n])*+"?')
_NOT_BRACKET = re.compile(r"[^\[\]{}\n]++")
# A \uD800-\uDFFF escape: half of a surrogate pair, or all of one (checked after parsing).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _line(text: str, pos: int) -> str:
    return f"line {text.count(chr(10), 0, pos) + 1}"


def _newlines(match: re.Match[str]) -> str:
    return "\n" * match.group().count("\n")


def _check_nesting(text: str, strings: re.Pattern[str], error: type[PathError], what: str) -> None:
    """Refuse brackets nested more than MAX_NESTING deep, outside strings (and comments)."""
    skeleton = _NOT_BRACKET.sub("", strings.sub(_newlines, text))
    depth = 0
    for number, row in enumerate(skeleton.split("\n"), 1):
        for char in row:
            if char in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    raise error(
                        "",
                        f"line {number}: {what} nested more than {MAX_NESTING} deep; "
                        f"at most {MAX_NESTING}",
                    )
            elif depth:
                depth -= 1


def _size(text: str, max_bytes: int, what: str, error: type[PathError]) -> None:
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))
        raise error(
            "", f"{what} is {size:,} bytes; at most {max_bytes:,} ({max_bytes // 1024} KiB)"
        )


def check_toml(text: str, error: type[PathError], max_bytes: int, what: str = "the file") -> None:
    """Refuse (raise ``error``) a TOML text too large, too deeply nested, with a key of too many
    dotted parts or a bare word too long; a text that passes is cheap for ``tomllib``."""
    _size(text, max_bytes, what, error)
    found = _TOML_KEYS.match(text)
    if found is not None and found.lastgroup == "long_key":
        start = found.start("long_key")
        rest = _MORE_PARTS.match(text, found.end())
        parts = len(_ONE_PART.findall(found.group("long_key") + (rest.group() if rest else "")))
        raise error(
            "", f"{_line(text, start)}: a key with {parts:,} dotted parts; at most {MAX_KEY_PARTS}"
        )
    if found is not None and found.lastgroup == "long_word":
        start, size = found.start("long_word"), len(found.group("long_word"))
        raise error(
            "",
            f"{_line(text, start)}: a bare key or value of {size:,} characters; "
            f"at most {MAX_WORD_CHARS}",
        )
    _check_nesting(text, _TOML_TEXT, error, "arrays and inline tables")


def loads_json(text: str, error: type[PathError], max_bytes: int, what: str = "the text") -> Any:
    """``json.loads`` for text from users. Refuses (raises ``error``) what is too large or too
    deeply nested, NaN and Infinity, numbers too long to be meant and numbers out of range
    (``1e400``); any other bad JSON is refused with the parser's message."""
    _size(text, max_bytes, what, error)
    _check_nesting(text, _JSON_TEXT, error, "lists and objects")

    def integer(digits: str) -> int:
        if len(digits) > MAX_NUMBER_CHARS:
            raise error("", f"a number of {len(digits):,} digits; at most {MAX_NUMBER_CHARS}")
        return int(digits)

    def decimal(literal: str) -> float:
        if len(literal) > MAX_NUMBER_CHARS:
            raise error("", f"a number of {len(literal):,} characters; at most {MAX_NUMBER_CHARS}")
        value = float(literal)
        if not math.isfinite(value):
            raise error("", f"the number {literal} is out of range")
        return value

    def constant(name: str) -> Any:
        raise error("", f"{name} is not a number JSON allows")

    try:
        value = json.loads(text, parse_int=integer, parse_float=decimal, parse_constant=constant)
    except RecursionError:  # not reached past the depth check; kept so that it never escapes
        raise error("", f"lists and objects nested too deeply; at most {MAX_NESTING}") from None
    except ValueError as exc:
        if isinstance(exc, error):
            raise
        raise error("", f"not valid JSON: {exc}") from None
    _check_unicode(text, value, error)
    return value


def _check_unicode(text: str, value: Any, error: type[PathError]) -> None:
    """JSON escapes can spell half a surrogate pair (``"\\ud800"``): such a string cannot be
    stored or sent back as UTF-8, so it is refused here rather than fail there."""
    if _SURROGATE_ESCAPE.search(text) is None:
        return
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise error(
            "", "a string holds a lone surrogate escape (\\ud800 to \\udfff): not Unicode text"
        ) from None
