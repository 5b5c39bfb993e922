"""The compare pages: choosing two settings, the two panes side by side, and their presses.

A pane is the room page of one of the compare's two rooms (``dashboard.views.room_page``, its
panels, room.js and WebSocket unchanged), served framable by this page only and marked
``in-pane`` so that room.css leaves out what belongs to the compare page (the site header,
sharing, forks). static/js/compare.js sends every control pressed in either pane to
``control`` below, which queues it for both rooms (pair.py).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from broker.scenario import ScenarioError, ScenarioSpec
from dashboard import security, views
from dashboard.compare import pair, presets, store
from dashboard.live.limits import Busy, LimitError
from dashboard.panels import workshop_panels
from dashboard.workshops import rooms, workshop
from dashboard.workshops.forms import CONTROL_FIELDS

assert pair.SIDES  # importing pair registers the compare operations with the runtime

MAX_SEED = 2**31 - 1


class CompareForm(forms.Form):
    scenario = forms.CharField(max_length=64, required=False)
    room = forms.CharField(max_length=16, required=False)
    a = forms.CharField(max_length=40)
    b = forms.CharField(max_length=40)
    a_custom = forms.CharField(max_length=presets.MAX_CUSTOM_CHARS, required=False)
    b_custom = forms.CharField(max_length=presets.MAX_CUSTOM_CHARS, required=False)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, required=False)
    mode = forms.ChoiceField(choices=[("workshop", "workshop"), ("private", "private")])

    def error_text(self) -> str:
        return " ".join(
            f"{name}: {message}" if name != "__all__" else str(message)
            for name, errors in self.errors.items()
            for message in errors
        )


class Source:
    """The scenario a compare runs: a built-in one, or a room's (an upload's too)."""

    def __init__(self, spec: ScenarioSpec, toml: str, seed: int, room_id: str = "") -> None:
        self.spec, self.toml, self.seed, self.room_id = spec, toml, seed, room_id


def _source(scenario: str, room_id: str) -> Source | str:
    """The source asked for, or why there is none."""
    if room_id:
        record = rooms.live_room(room_id)
        if record is None:
            return f"There is no room {room_id!r} (it may have expired)."
        return Source(rooms.spec_of(record.run), record.run.scenario_toml, record.run.seed, room_id)
    from broker.scenario import builtin_names, load

    if scenario not in builtin_names():
        return f"There is no built-in scenario {scenario!r}."
    spec = load(scenario)
    return Source(spec, rooms.builtin_text(scenario), spec.seed)


def _choose_page(
    request: HttpRequest, source: Source | None, error: str = "", status: int = 200
) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    options = presets.presets(source.spec) if source is not None else []
    default_a, default_b = presets.default_pair(source.spec) if source else ("", "")
    context = {
        "source": source,
        "scenarios": views.builtin_scenarios() or [],
        "options": options,
        "a": data.get("a", default_a),
        "b": data.get("b", default_b),
        "a_custom": data.get("a_custom", ""),
        "b_custom": data.get("b_custom", ""),
        "seed": data.get("seed", source.seed if source else ""),
        "error": error,
        "custom": presets.CUSTOM,
    }
    return render(request, "dashboard/compare_new.html", context, status=status)


@require_http_methods(["GET", "POST"])
def new(request: HttpRequest) -> HttpResponse:
    """GET: pick the two settings (and the seed) for a scenario; POST: open the compare."""
    data = request.POST if request.method == "POST" else request.GET
    scenario, room_id = data.get("scenario", ""), data.get("room", "")
    if not scenario and not room_id:
        if request.method == "POST":
            return _choose_page(request, None, "Which scenario? (scenario is missing)", 400)
        return _choose_page(request, None)
    source = _source(scenario, room_id)
    if isinstance(source, str):
        return _choose_page(request, None, source, 400 if request.method == "POST" else 404)
    if request.method == "GET":
        return _choose_page(request, source)
    form = CompareForm(request.POST)
    if not form.is_valid():
        return _choose_page(request, source, form.error_text(), 400)
    fields = form.cleaned_data
    try:
        settings = (
            presets.choose(source.spec, fields["a"], fields["a_custom"], "A"),
            presets.choose(source.spec, fields["b"], fields["b_custom"], "B"),
        )
    except presets.SettingError as exc:
        return _choose_page(request, source, str(exc), 400)
    if settings[0] == settings[1]:
        return _choose_page(
            request, source, "Panes A and B have the same setting: pick two that differ.", 400
        )
    workshop_mode = fields["mode"] == "workshop"
    action = "room" if workshop_mode else "fork"
    # Two rooms' worth of work: the rate of room creations counts it twice.
    refusal = workshop.rate_refusal(request, action) or workshop.rate_refusal(request, action)
    if refusal:
        return views._rated(_choose_page(request, source, refusal, 400), refusal)
    seed = source.seed if fields["seed"] is None else fields["seed"]
    try:
        compare, key_a, key_b = store.create(
            source.spec,
            source.toml,
            seed,
            settings,
            workshop=workshop_mode,
            creator=workshop.creator(request) if workshop_mode else "",
        )
    except Busy as exc:
        busy = workshop.busy(str(exc), exc.retry_after_s)
        return views._rated(_choose_page(request, source, busy, 400), busy)
    except (LimitError, ScenarioError) as exc:
        return _choose_page(request, source, str(exc), 400)
    rooms.take_presenter(request.session, compare.b, key_b)
    rooms.take_presenter(request.session, compare.a, key_a)
    return redirect("compare", compare_id=compare.id)


def _find(compare_id: str) -> store.Compare | HttpResponse:
    compare = store.find(compare_id)
    if compare is None:
        return HttpResponse(
            "No such compare: it may have expired or been ended.",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    return compare


def _is_presenter(request: HttpRequest, compare: store.Compare) -> bool:
    return all(rooms.is_presenter(request.session, r) for r in compare.room_ids)


@require_GET
def page(request: HttpRequest, compare_id: str) -> HttpResponse:
    compare = _find(compare_id)
    if isinstance(compare, HttpResponse):
        return compare
    bound = views.call("compare_bind", compare_id=compare.id, room_ids=list(compare.room_ids))
    if bound.get("error"):
        return HttpResponse(bound["error"], status=503, content_type="text/plain; charset=utf-8")
    for record in (compare.a, compare.b):
        rooms.touch_if_stale(record)
    presenter = _is_presenter(request, compare)
    code = compare.a.code or ""
    attendee_url = request.build_absolute_uri(reverse("join", args=[code])) if code else ""
    panes = [
        {
            "side": side,
            "label": side.upper(),
            "setting": presets.describe(store.settings_of(record)),
            "room": record,
        }
        for side, record in zip(pair.SIDES, (compare.a, compare.b), strict=True)
    ]
    context = {
        "compare": compare,
        "title": compare.a.run.title,
        "scenario_name": compare.a.run.scenario_name,
        "seed": compare.a.run.seed,
        "panes": panes,
        "role": "presenter" if presenter else "attendee",
        "workshop": compare.a.kind == "workshop",
        "code": code,
        "attendee_url": attendee_url,
        "join_qr": workshop_panels.join_qr(attendee_url) if presenter and attendee_url else "",
    }
    return render(request, "dashboard/compare.html", context)


@require_GET
def pane(request: HttpRequest, compare_id: str, side: str) -> HttpResponse:
    """One pane: the room page of one of the compare's rooms, framable by the compare page."""
    compare = _find(compare_id)
    if isinstance(compare, HttpResponse):
        return compare
    if side not in pair.SIDES:
        return HttpResponse(
            f"A compare has panes a and b, not {side!r}.",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    record = compare.a if side == "a" else compare.b
    response = views.room_page(request, record.id)
    if response.status_code == 200:
        html = response.content.decode("utf-8")
        # Marked as a pane (room.css); its links open in the whole window, not in the frame.
        marked = html.replace("<head>", '<head>\n  <base target="_top">', 1)
        marked = marked.replace(' class="is-room ', f' class="in-pane pane-{side} is-room ', 1)
        response.content = marked.encode("utf-8")
        # Framable by the lab's own pages only (the compare page), nowhere else.
        response["X-Frame-Options"] = "SAMEORIGIN"
        response["Content-Security-Policy"] = security.policy(request).replace(
            "frame-ancestors 'none'", "frame-ancestors 'self'"
        )
    return response


@require_POST
def control(request: HttpRequest, compare_id: str, side: str) -> HttpResponse:
    """A press made in one pane, for both (204; the change arrives in the panes' frames)."""
    compare = _find(compare_id)
    if isinstance(compare, HttpResponse):
        return compare
    if not _is_presenter(request, compare):
        return views._refuse(request, workshop.NOT_PRESENTER, 403)
    if side not in pair.SIDES:
        return views._refuse(request, f"side must be a or b, not {side!r}.", 400)
    refusal = workshop.rate_refusal(request, "control")
    if refusal:
        return views._refuse(request, refusal, 429)
    fields = {k: request.POST[k] for k in CONTROL_FIELDS if k in request.POST}
    result: dict[str, Any] = views.call(
        "compare_control",
        compare_id=compare.id,
        room_ids=list(compare.room_ids),
        side=side,
        fields=fields,
        presenter=True,
    )
    if result.get("error"):
        status = 503 if result.get("unavailable") else 400
        return views._refuse(request, views._refusal_of(result), status)
    return HttpResponse(status=204)


@require_POST
def end(request: HttpRequest, compare_id: str) -> HttpResponse:
    """End both rooms: their runs are saved, viewers are told, the join code stops working."""
    compare = _find(compare_id)
    if isinstance(compare, HttpResponse):
        return compare
    if not _is_presenter(request, compare):
        return views._refuse(request, workshop.NOT_PRESENTER, 403)
    for room_id in reversed(compare.room_ids):
        result = views.call("end", room_id=room_id)
        if result.get("error"):
            return views._refuse(request, views._refusal_of(result), 400)
    return redirect("run", compare.a.run_id)
