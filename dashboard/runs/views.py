"""Saved runs over HTTP: the run page, replaying it in a new room, export, import, the report."""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from broker.scenario import ScenarioSpec
from dashboard.live.limits import Busy, LimitError
from dashboard.live.timeline import Timeline
from dashboard.models import SavedRun
from dashboard.panels.observe import scenario_info, verdict_of
from dashboard.runs.store import (
    RunError,
    command_rows,
    copy_run,
    diagram_svg,
    export_document,
    export_filename,
    import_run,
    load_scenario,
    max_upload_bytes,
    paragraphs,
    replay,
    settings_of,
    verdict_context,
)
from dashboard.workshops import questions, workshop
from dashboard.workshops.rooms import commands_of, create_room, remember_run, take_presenter


def _rated(response: HttpResponse, refusal: str) -> HttpResponse:
    """A refusal for going past a rate (``workshop.rate_refusal``): 429 Too Many Requests, with
    Retry-After saying when to come back."""
    response.status_code = 429
    if isinstance(refusal, workshop.Refusal):
        response["Retry-After"] = str(refusal.retry_after_s)
    return response


def _run_view_rate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The "run-view" rate (per address) for the GET pages of a run; a plain 429 past it."""

    @functools.wraps(view)
    def rated(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = workshop.rate_refusal(request, "run-view")
        if refusal:
            return _rated(HttpResponse(refusal, content_type="text/plain; charset=utf-8"), refusal)
        return view(request, *args, **kwargs)

    return rated


class RunImportForm(forms.Form):
    run = forms.FileField(label="Run file (.json)")

    def clean_run(self) -> bytes:
        upload = self.cleaned_data["run"]
        limit = max_upload_bytes()
        too_big = (
            f"{upload.name} is larger than {limit:,} bytes ({limit // 1024} KiB), the most a run "
            f"file may be (LAB_MAX_RUN_UPLOAD_BYTES)."
        )
        if upload.size is not None and upload.size > limit:
            raise forms.ValidationError(too_big)
        data: bytes = upload.read(limit + 1)
        if len(data) > limit:
            raise forms.ValidationError(too_big)
        return data

    def error(self) -> RunError:
        messages = [str(m) for errors in self.errors.values() for m in errors]
        return RunError("", " ".join(messages) or "Choose a run file to import.")


@dataclass(frozen=True, slots=True)
class Replayed:
    """A saved run replayed to its end, or why it could not be."""

    spec: ScenarioSpec | None
    timeline: Timeline | None
    error: RunError | None

    @property
    def verdict(self) -> dict[str, Any] | None:
        return verdict_of(self.timeline.sim) if self.timeline is not None else None


# The last few replays, by run and version: a run page, its report and its export replay the
# same run one after the other, and a large run takes seconds to replay.
REPLAY_CACHE_SIZE = 4
_replays: OrderedDict[tuple[str, Any, int], Replayed] = OrderedDict()
_replays_lock = threading.Lock()


def _replayed(run: SavedRun) -> Replayed:
    key = (run.id, run.updated_at, len(run.commands))
    with _replays_lock:
        if key in _replays:
            _replays.move_to_end(key)
            return _replays[key]
    replayed = _replay_now(run)
    with _replays_lock:
        _replays[key] = replayed
        while len(_replays) > REPLAY_CACHE_SIZE:
            _replays.popitem(last=False)
    return replayed


def _replay_now(run: SavedRun) -> Replayed:
    try:
        spec = load_scenario(run.scenario_toml, run.scenario_name)
    except RunError as exc:
        return Replayed(None, None, exc)
    try:
        return Replayed(spec, replay(spec, run.seed, commands_of(run)), None)
    except RunError as exc:
        return Replayed(spec, None, exc)


def _saved_run(run_id: str) -> SavedRun:
    run: SavedRun = get_object_or_404(SavedRun, id=run_id)
    return run


def _verdict(replayed: Replayed) -> dict[str, Any] | None:
    verdict = replayed.verdict
    if replayed.spec is None or verdict is None:
        return None
    return verdict_context(replayed.spec, verdict)


def _run_page(
    request: HttpRequest, run: SavedRun, error: str = "", status: int = 200
) -> HttpResponse:
    replayed = _replayed(run)
    context = {
        "run": run,
        "scenario": scenario_info(replayed.spec) if replayed.spec is not None else None,
        "commands": command_rows(run),
        "questions": questions.result_rows(run),
        "verdict": _verdict(replayed),
        "replay_error": replayed.error,
        "error": error,
    }
    return render(request, "dashboard/run_page.html", context, status=status)


@require_GET
@_run_view_rate
def run_page(request: HttpRequest, run_id: str) -> HttpResponse:
    """A saved run: its scenario, seed and commands, and the verdict of replaying it."""
    return _run_page(request, _saved_run(run_id))


@require_POST
def run_replay(request: HttpRequest, run_id: str) -> HttpResponse:
    """A copy of the run in a new workshop room, presented by this browser session."""
    run = _saved_run(run_id)
    refusal = workshop.rate_refusal(request, "room")
    if refusal:
        return _rated(_run_page(request, run, error=refusal), refusal)
    try:
        with transaction.atomic():  # no orphan copy when the room is refused
            copy = copy_run(run, origin="replay")
            room, key = create_room(copy, creator=workshop.creator(request))
    except Busy as exc:
        response = _run_page(request, run, error=str(exc), status=429)
        response["Retry-After"] = str(exc.retry_after_s)
        return response
    except (RunError, LimitError) as exc:
        return _run_page(request, run, error=str(exc), status=400)
    take_presenter(request.session, room, key)
    return redirect("room", room_id=room.id)


@require_GET
@_run_view_rate
def run_export(request: HttpRequest, run_id: str) -> HttpResponse:
    """The run as a JSON file (its verdict is empty when the run cannot be replayed here)."""
    run = _saved_run(run_id)
    document = export_document(run, _replayed(run).verdict)
    body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, export_filename(run))
    return response


@require_http_methods(["GET", "POST"])
def run_import(request: HttpRequest) -> HttpResponse:
    """Upload a run file; it is checked (and replayed) in full before anything is saved."""
    if request.method == "GET":
        return _import_page(request, RunImportForm())
    form = RunImportForm(request.POST, request.FILES)
    refusal = workshop.rate_refusal(request, "run-import")
    if refusal:
        return _rated(_import_page(request, form, RunError("", refusal)), refusal)
    if not form.is_valid():
        return _import_page(request, form, form.error(), status=400)
    try:
        run = import_run(form.cleaned_data["run"])
    except RunError as exc:
        return _import_page(request, form, exc, status=400)
    remember_run(request.session, run.id)
    return redirect("run", run_id=run.id)


def _import_page(
    request: HttpRequest, form: RunImportForm, error: RunError | None = None, status: int = 200
) -> HttpResponse:
    context = {"form": form, "error": error, "limit_kib": max_upload_bytes() // 1024}
    return render(request, "dashboard/run_import.html", context, status=status)


@require_GET
@_run_view_rate
def run_report(request: HttpRequest, run_id: str) -> HttpResponse:
    """A standalone, printable page: settings, commands, the sequence diagram, the verdict."""
    run = _saved_run(run_id)
    replayed = _replayed(run)
    svg, truncated = ("", False)
    if replayed.timeline is not None:
        svg, truncated = diagram_svg(replayed.timeline)
    spec = replayed.spec
    context = {
        "run": run,
        "scenario": scenario_info(spec) if spec is not None else None,
        "description": paragraphs(spec.description) if spec is not None else [],
        "settings": settings_of(spec) if spec is not None else None,
        "commands": command_rows(run),
        "svg": svg,
        "diagram_truncated": truncated,
        "verdict": _verdict(replayed),
        "replay_error": replayed.error,
        "generated_at": timezone.now(),
    }
    return render(request, "dashboard/run_report.html", context)
