"""The Story panel."""

from __future__ import annotations

from typing import Any


def narration_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    steps = obs["scenario"].get("steps", [])
    told = [text for _t, text in obs["snapshot"].get("narration", [])]
    if not steps and not told:
        return None
    remaining: dict[str, int] = {}
    for text in told:
        remaining[text] = remaining.get(text, 0) + 1
    items = []
    for step in steps:
        done = remaining.get(step["narration"], 0) > 0
        if done:
            remaining[step["narration"]] -= 1
        items.append({"at_ms": step["at_ms"], "text": step["narration"], "done": done})
    current = max((i for i, item in enumerate(items) if item["done"]), default=None)
    for i, item in enumerate(items):
        item["current"] = i == current
    return {"items": items}
