"""From an observation to HTML: the page's panels, and frames of what changed between two.

A frame is a string of top-level elements that the htmx ws extension swaps out-of-band by id:
the first is ``#frame-seq`` (sequence number and kind, which the browser checks for gaps), then
replaced panels, appended lane cells (``beforeend``), removed cells (``delete``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string

from dashboard.panels import consumer_panels as cp
from dashboard.panels import experiments as ex
from dashboard.panels import presenters as p
from dashboard.panels import txn_panels as tp
from dashboard.panels import workshop_panels as wp
from dashboard.panels.diagram import sequence_diagram
from dashboard.panels.travel import travel_panel

Presenter = Callable[[dict[str, Any]], dict[str, Any] | None]

PANELS: tuple[tuple[str, str, Presenter], ...] = (
    ("run-header", "dashboard/panels/header.html", p.header_panel),
    ("room-banner", "dashboard/panels/room_banner.html", wp.room_banner_panel),
    ("question", "dashboard/panels/question.html", wp.question_panel),
    ("question-tally", "dashboard/panels/question_tally.html", wp.question_tally_panel),
    ("speaker-notes", "dashboard/panels/speaker_notes.html", wp.speaker_notes_panel),
    ("controls", "dashboard/panels/controls.html", p.controls_panel),
    ("scrubber-panel", "dashboard/panels/scrubber.html", p.scrubber_panel),
    ("faults", "dashboard/panels/faults.html", p.faults_panel),
    ("experiments", "dashboard/panels/experiments.html", ex.experiments_panel),
    ("brokers", "dashboard/panels/brokers.html", p.brokers_panel),
    ("producers", "dashboard/panels/producers.html", p.producers_panel),
    ("consumers", "dashboard/panels/consumers.html", cp.consumers_panel),
    ("groups", "dashboard/panels/groups.html", cp.groups_panel),
    ("sink", "dashboard/panels/sink.html", cp.sink_panel),
    ("offsets-log", "dashboard/panels/offsets_log.html", cp.offsets_log_panel),
    ("transactions", "dashboard/panels/transactions.html", tp.transactions_panel),
    ("processors", "dashboard/panels/processors.html", tp.processors_panel),
    ("txn-log", "dashboard/panels/txn_log.html", tp.txn_log_panel),
    ("verdict", "dashboard/panels/verdict.html", p.verdict_panel),
    ("about", "dashboard/panels/about.html", wp.about_panel),
    ("narration", "dashboard/panels/narration.html", p.narration_panel),
    ("events", "dashboard/panels/events.html", p.events_panel),
    ("extras", "dashboard/panels/extras.html", p.extras_panel),
    ("travel", "dashboard/panels/travel.html", travel_panel),
    ("kafka", "dashboard/panels/kafka.html", wp.kafka_panel),
)
# Sent to presenters only (a room's frames come in two variants with the same sequence number).
PRIVATE_PANELS = frozenset({"speaker-notes", "question-tally"})
# Past this many cell changes in one lane, one replacement of the lane's cells is cheaper.
MAX_CELL_CHANGES = p.LANE_WINDOW // 2
# Up to this many records new to a lane in one frame slide in (``is-arriving``, lab.css): one
# can follow a few. More at once (a fast speed, a seek) just appear: each sliding cell is a layer
# of its own for the browser to composite, and nobody follows twenty of them in 50 ms.
MAX_ARRIVING = 4


@dataclass(slots=True)
class LaneModel:
    slug: str
    start: int
    cells: dict[int, str]
    parts: dict[str, str]  # element id -> html (header, cursors, ghosts)
    contexts: dict[str, Any]
    cell_cache: dict[tuple[Any, ...], str] = field(default_factory=dict)


@dataclass(slots=True)
class PageModel:
    html: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, Any] = field(default_factory=dict)
    lanes: dict[str, LaneModel] = field(default_factory=dict)
    room_id: str = ""
    declared: frozenset[str] = frozenset()  # the scenario's partitions (others were created)
    unlaned: list[str] = field(default_factory=list)  # partitions past the lanes' limit
    _lanes_html: str | None = None

    def panel(self, panel_id: str) -> str:
        return self.html.get(panel_id, "")

    @property
    def lanes_html(self) -> str:
        """All the lanes, rendered only when needed (a full frame, a new lane), then kept."""
        if self._lanes_html is None:
            self._lanes_html = render_to_string(
                "dashboard/panels/lanes.html",
                {
                    "lanes": [
                        _lane_context(name, lane, name not in self.declared)
                        for name, lane in self.lanes.items()
                    ],
                    "room_id": self.room_id,
                    "unlaned": p.unlaned_note(self.unlaned),
                },
            )
        return self._lanes_html


def _empty(panel_id: str) -> str:
    return f'<section id="{panel_id}" class="panel is-empty" hidden></section>'


def _render(
    panel_id: str,
    template: str,
    context: dict[str, Any] | None,
    previous: PageModel | None,
) -> str:
    if previous is not None and previous.contexts.get(panel_id, ...) == context:
        return previous.html[panel_id]
    if context is None:
        return _empty(panel_id)
    return render_to_string(template, {**context, "panel_id": panel_id})


# Panels that change with every event but are costly to send 20 times a second to every browser.
DETAIL_PANELS = frozenset({"events", "diagram"})


def build_model(
    obs: dict[str, Any], previous: PageModel | None = None, details: bool = True
) -> PageModel:
    """The page for ``obs``; with ``details`` False, DETAIL_PANELS stay as in ``previous``."""
    model = PageModel()
    hold = not details and previous is not None
    for panel_id, template, presenter in PANELS:
        if hold and panel_id in DETAIL_PANELS and previous is not None:
            model.contexts[panel_id] = previous.contexts[panel_id]
            model.html[panel_id] = previous.html[panel_id]
            continue
        context = presenter(obs)
        model.contexts[panel_id] = context
        model.html[panel_id] = _render(panel_id, template, context, previous)
    # The events, and the real Kafka clients' client.ids (one column each in the diagram).
    kafka = (obs.get("room") or {}).get("kafka") or {}
    diagram_input = (obs.get("diagram", []), [c["name"] for c in kafka.get("producers", [])])
    if hold and previous is not None:
        diagram_input = previous.contexts["diagram"]
    model.contexts["diagram"] = diagram_input
    if previous is not None and previous.contexts.get("diagram") == diagram_input:
        model.html["diagram"] = previous.html["diagram"]
    else:
        svg = sequence_diagram(obs["scenario"], *diagram_input)
        model.html["diagram"] = render_to_string("dashboard/panels/diagram.html", {"svg": svg})
    duplicates = p.duplicates_by_partition(obs)
    ghosts = obs.get("ghosts", {})
    consumers = obs["snapshot"].get("consumers") or []
    consumers = consumers + [c["cursors"] for c in cp.external_consumers(obs)]
    declared = obs["scenario"].get("partitions", [])
    # The scenario's own, then topics real clients created (bounded), then the internal topics.
    partitions, model.unlaned = p.lane_partitions(obs["snapshot"].get("partitions", []), declared)
    model.declared = frozenset(declared)
    for partition in partitions:
        name = partition["name"]
        old = previous.lanes.get(name) if previous is not None else None
        cache = old.cell_cache if old is not None else {}
        start, cells = p.lane_cells(partition, duplicates.get(name), cache)
        lane_slug = p.slug(name)
        cursors = p.lane_cursors(partition, start, consumers)
        contexts = {
            f"lanehead-{lane_slug}": (
                "dashboard/panels/lane_header.html",
                p.lane_header(partition),
            ),
            f"cursors-{lane_slug}": ("dashboard/panels/lane_cursors.html", cursors),
            f"ghosts-{lane_slug}": (
                "dashboard/panels/lane_ghosts.html",
                p.lane_ghosts(name, ghosts.get(name, []), start, cursors["columns"]),
            ),
            f"reads-{lane_slug}": ("dashboard/panels/lane_reads.html", p.lane_reads(partition)),
        }
        parts = {}
        for part_id, (template, context) in contexts.items():
            if old is not None and old.contexts.get(part_id) == context:
                parts[part_id] = old.parts[part_id]
            else:
                parts[part_id] = render_to_string(template, context)
        model.lanes[name] = LaneModel(
            lane_slug, start, cells, parts, {k: c for k, (_t, c) in contexts.items()}, cache
        )
    model.room_id = obs["status"].get("room_id", "")
    return model


def _lane_context(name: str, lane: LaneModel, created: bool = False) -> dict[str, Any]:
    internal = name.startswith("__")
    return {
        "name": name,
        "slug": lane.slug,
        "header": lane.parts[f"lanehead-{lane.slug}"],
        "cells": _cells_list(lane),
        "ghosts": lane.parts[f"ghosts-{lane.slug}"],
        "cursors": lane.parts[f"cursors-{lane.slug}"],
        "reads": lane.parts[f"reads-{lane.slug}"],
        "internal": internal,
        "created": created and not internal,  # a topic created while the run went on
    }


def _arriving(cell: str) -> str:
    """A cell's html, marked as just arrived (it slides in once, when inserted)."""
    return cell.replace(' class="cell ', ' class="cell is-arriving ', 1)


def _cells_list(lane: LaneModel, oob: str = "", arriving: frozenset[int] = frozenset()) -> str:
    attr = f' hx-swap-oob="{oob}"' if oob else ""
    body = "".join(
        _arriving(lane.cells[o]) if o in arriving else lane.cells[o] for o in sorted(lane.cells)
    )
    return (
        f'<ol id="cells-{lane.slug}" class="cells" aria-label="records, oldest first"{attr}>'
        f"{body}</ol>"
    )


def full_fragments(model: PageModel, skip: frozenset[str] = frozenset()) -> list[str]:
    """Everything (but ``skip``), for a browser that just connected or missed a frame."""
    out = [model.html[panel_id] for panel_id, _t, _p in PANELS if panel_id not in skip]
    out.append(model.html["diagram"])
    out.append(model.lanes_html)
    return out


def private_changes(old: PageModel, new: PageModel) -> list[str]:
    """The presenter-only panels that changed from ``old`` to ``new``."""
    return [
        new.html[panel_id]
        for panel_id in sorted(PRIVATE_PANELS)
        if old.html.get(panel_id) != new.html.get(panel_id)
    ]


def diff_fragments(old: PageModel, new: PageModel, skip: frozenset[str] = frozenset()) -> list[str]:
    """Only what changed from ``old`` to ``new`` (leaving out the panels in ``skip``)."""
    out = [
        html
        for panel_id, html in new.html.items()
        if panel_id not in skip and old.html.get(panel_id) != html
    ]
    if list(old.lanes) != list(new.lanes) or old.unlaned != new.unlaned:
        out.append(new.lanes_html)
        return out
    for name, lane in new.lanes.items():
        out.extend(_lane_diff(old.lanes[name], lane))
    return out


def _lane_diff(old: LaneModel, new: LaneModel) -> list[str]:
    out = [html for part_id, html in new.parts.items() if old.parts.get(part_id) != html]
    removed = [o for o in old.cells if o not in new.cells]
    changed = [o for o in new.cells if o in old.cells and old.cells[o] != new.cells[o]]
    added = sorted(o for o in new.cells if o not in old.cells)
    kept = [o for o in old.cells if o in new.cells]
    appendable = not kept or not added or added[0] > max(kept)
    arriving = frozenset(added) if len(added) <= MAX_ARRIVING else frozenset()
    if not appendable or len(removed) + len(changed) + len(added) > MAX_CELL_CHANGES:
        out.append(_cells_list(new, "true", arriving))
        return out
    out.extend(f'<li id="c-{new.slug}-{o}" hx-swap-oob="delete"></li>' for o in removed)
    out.extend(new.cells[o] for o in changed)
    if added:
        body = "".join(_arriving(new.cells[o]) if o in arriving else new.cells[o] for o in added)
        out.append(f'<ol id="cells-{new.slug}" hx-swap-oob="beforeend">{body}</ol>')
    return out


def frame(seq: int, kind: str, fragments: list[str], sent_at: float | None = None) -> str:
    """One WebSocket message. ``sent_at`` (epoch seconds) lets a client measure the delay."""
    sent_ms = int((time.time() if sent_at is None else sent_at) * 1000)
    head = (
        f'<output id="frame-seq" data-seq="{seq}" data-kind="{kind}" data-sent="{sent_ms}" '
        f"hidden>{seq}</output>"
    )
    return head + "".join(fragments)


def error_frame(message: str) -> str:
    from html import escape

    return f'<div id="ws-error" class="ws-error" role="alert">{escape(message)}</div>'
