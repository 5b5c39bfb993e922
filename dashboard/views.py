from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard.forms import ControlForm, ScenarioUploadForm
from dashboard.fragments import error_frame
from dashboard.presenters import LANE_WINDOW, slug, window_cells
from dashboard.runtime import LimitError, Room, registry

# Modules whose absence means "the engine is not written yet" rather than a bug in it.
_ENGINE_MODULES = {"broker", "broker.scenario"}
CSRF_MARK = "<!--csrf-->"


def builtin_scenarios() -> list[Any] | None:
    """The engine's built-in scenarios, or None while the engine is not installed."""
    try:
        from broker.scenario import builtin_scenarios as load
    except ImportError as exc:
        if exc.name not in _ENGINE_MODULES:
            raise  # the engine is there but broken: show the error, don't hide it
        return None
    return list(load())


def _catalogue(
    request: HttpRequest,
    upload: ScenarioUploadForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "scenarios": builtin_scenarios(),
        "upload": upload or ScenarioUploadForm(),
        "error": error,
        "scenario_error": getattr(upload, "scenario_error", None),
    }
    return render(request, "dashboard/home.html", context, status=status)


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """The scenario catalogue; POST opens a built-in scenario in a new room."""
    if request.method == "GET":
        return _catalogue(request)
    name = request.POST.get("scenario", "")
    from broker.scenario import ScenarioError, builtin_names, load

    if name not in builtin_names():
        return _catalogue(request, error=f"There is no built-in scenario {name!r}.", status=400)
    try:
        room = registry.create(load(name))
    except (LimitError, ScenarioError) as exc:
        return _catalogue(request, error=str(exc), status=400)
    return redirect("room", room_id=room.id)


@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    """Open an uploaded scenario file in a new room, or say precisely what is wrong with it."""
    form = ScenarioUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _catalogue(request, upload=form, status=400)
    try:
        room = registry.create(form.cleaned_data["scenario"])
    except LimitError as exc:
        return _catalogue(request, upload=form, error=str(exc), status=400)
    return redirect("room", room_id=room.id)


def _room(room_id: str) -> Room:
    room = registry.get(room_id)
    if room is None:
        raise Http404("No such run: it may have been closed to make room for others.")
    return room


@require_GET
def room_page(request: HttpRequest, room_id: str) -> HttpResponse:
    room = _room(room_id)
    model = room.page()
    token = format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request)
    )
    panels = {
        key.replace("-", "_"): html.replace(CSRF_MARK, token) for key, html in model.html.items()
    }
    context = {
        "room": room,
        "panels": panels,
        "lanes_html": model.lanes_html,
        "seq": room.seq,
        "title": room.scenario["title"],
    }
    return render(request, "dashboard/room.html", context)


@require_POST
async def control(request: HttpRequest, room_id: str) -> HttpResponse:
    """A playback control or fault button (htmx: 204, the change arrives in the next frame)."""
    room = _room(room_id)
    form = ControlForm(request.POST, room=room)
    if not form.is_valid():
        message = form.error_text()
        if request.htmx:  # type: ignore[attr-defined]
            response = HttpResponse(error_frame(message))
            response["HX-Retarget"] = "#ws-error"
            response["HX-Reswap"] = "outerHTML"
            return response
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
    room.submit(form.control())
    room.ensure_running()
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponse(status=204)
    return redirect("room", room_id=room.id)


@require_GET
def lane(request: HttpRequest, room_id: str, partition: str) -> HttpResponse:
    """A window of a partition's log at any offset ("jump to offset")."""
    room = _room(room_id)
    if partition not in room.scenario["partitions"]:
        raise Http404(f"This scenario has no partition {partition!r}.")
    try:
        offset = int(request.GET.get("offset", ""))
    except ValueError:
        return HttpResponseBadRequest("offset must be a whole number", content_type="text/plain")
    if offset < 0:
        return HttpResponseBadRequest("offset must be 0 or more", content_type="text/plain")
    window = room.timeline.sim.read_records(partition, offset, LANE_WINDOW)
    lane_slug = slug(partition)
    cells = window_cells(partition, window)
    context = {
        "partition": partition,
        "offset": offset,
        "last": offset + LANE_WINDOW - 1,
        "cells": cells,
        "window": window,
        "slug": lane_slug,
        "room": room,
    }
    template = "dashboard/lane_window.html"
    if not request.htmx:  # type: ignore[attr-defined]
        template = "dashboard/lane_page.html"
    return render(request, template, context)
