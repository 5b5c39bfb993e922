"""Reading docs/scenarios.md in the tests that keep it true: its sections, code blocks, the
tables of built-ins, and running a documented example through the CLI."""

from __future__ import annotations

import re
from pathlib import Path

from broker.__main__ import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def builtin_table(title: str) -> list[tuple[str, str]]:
    """(name, declared outcome) for each row of a section's table of built-ins."""
    rows = re.findall(
        r"^\| `([a-z0-9-]+)` \| [^|]+ \| [^|]+ \| ([^|]+) \|", section(title), flags=re.MULTILINE
    )
    return [(name, declared.strip()) for name, declared in rows]


def run_example(example: str, path: Path) -> int:
    """Write a documented example to ``path`` and run ``python -m broker run`` on it."""
    path.write_text(example, encoding="utf-8")
    return main(["run", str(path)])
