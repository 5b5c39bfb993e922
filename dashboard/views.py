"""HTTP views. Roles come from the session (rooms.py); whatever touches a live room goes
through ``gateway.call`` to wherever the rooms run (this process, or the runtime worker)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
)
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from broker.scenario import ScenarioSpec
from dashboard import catalogue
from dashboard.compare import store as compares
from dashboard.live import gateway
from dashboard.live.limits import Busy, LimitError, setting
from dashboard.models import Question
from dashboard.panels import workshop_panels
from dashboard.workshops import ratelimit, rooms, workshop
from dashboard.workshops.forms import CONTROL_FIELDS, AskForm, ScenarioUploadForm

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


def call(op: str, **args: Any) -> dict[str, Any]:
    """A runtime operation from a sync view (on the server's event loop when there is one)."""
    try:
        return async_to_sync(gateway.call)(op, **args)
    except gateway.RuntimeUnavailable as exc:
        return {"error": str(exc), "unavailable": True}


def _catalogue(
    request: HttpRequest,
    upload: ScenarioUploadForm | None = None,
    error: str = "",
    status: int = 200,
    upload_refusal: str = "",
) -> HttpResponse:
    scenarios = builtin_scenarios()
    context = {
        "scenarios": scenarios,
        "legs": catalogue.grouped(scenarios or []),
        "upload": upload or ScenarioUploadForm(),
        "error": error,
        "scenario_error": getattr(upload, "scenario_error", None),
        "upload_refusal": upload_refusal,
        "my_rooms": workshop.my_rooms(request.session),
        "my_runs": workshop.my_runs(request.session),
    }
    return render(request, "dashboard/home.html", context, status=status)


def _open_room(
    request: HttpRequest, spec: ScenarioSpec, toml: str, preview: bool = False
) -> HttpResponse | str:
    """Create a workshop room (or, to ``preview``, a private one); the caller's session presents
    it. An error text on refusal."""
    refusal = workshop.rate_refusal(request, "fork" if preview else "room")
    if refusal:
        return refusal
    try:
        if preview:
            room, key = workshop.create_preview(spec, toml, request)
        else:
            room, key = workshop.create_workshop(spec, toml, request)
    except Busy as exc:
        return workshop.busy(str(exc), exc.retry_after_s)
    except LimitError as exc:
        return str(exc)
    rooms.take_presenter(request.session, room, key)
    return redirect("room", room_id=room.id)


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """The scenario catalogue; POST opens a built-in scenario in a new workshop room."""
    if request.method == "GET":
        return _catalogue(request)
    preview = "preview" in request.POST
    name = request.POST.get("preview" if preview else "scenario", "")
    from broker.scenario import ScenarioError, builtin_names, load

    if name not in builtin_names():
        return _catalogue(request, error=f"There is no built-in scenario {name!r}.", status=400)
    try:
        spec = load(name)
    except ScenarioError as exc:
        return _catalogue(request, error=str(exc), status=400)
    opened = _open_room(request, spec, rooms.builtin_text(name), preview=preview)
    if isinstance(opened, str):
        return _rated(_catalogue(request, error=opened, status=400), opened)
    return opened


# The lab's own documents a page may link to (served as text, offline): name -> title.
DOCS = {
    "scenarios": "The scenario file format",
    "architecture": "How the lab works, and where it simplifies Kafka",
    "workshops": "Running a workshop",
    "saved-runs": "Saved runs",
    "kafka-clients": "Real Kafka clients",
}


@require_GET
def scenario_format(request: HttpRequest) -> HttpResponse:
    """docs/scenarios.md, the scenario file format, as the repository has it (works offline)."""
    return doc(request, "scenarios")


@require_GET
def doc(request: HttpRequest, name: str) -> HttpResponse:
    """One of the lab's documents (DOCS) as the repository has it, as plain text."""
    if name not in DOCS:
        raise Http404(f"There is no document {name!r} here.")
    try:
        text = (settings.BASE_DIR / "docs" / f"{name}.md").read_text(encoding="utf-8")
    except OSError as exc:
        raise Http404(f"The document docs/{name}.md is not installed here.") from exc
    context = {"text": text, "title": DOCS[name], "path": f"docs/{name}.md"}
    return render(request, "dashboard/scenario_format.html", context)


@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    """Open an uploaded scenario file in a new room, or say precisely what is wrong with it."""
    form = ScenarioUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _upload_refused(request, form, "", 400)
    opened = _open_room(request, form.cleaned_data["scenario"], form.text)
    if isinstance(opened, str):
        return _rated(_upload_refused(request, form, opened, 400), opened)
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = opened["Location"]
        return response
    return opened


def _upload_refused(
    request: HttpRequest, form: ScenarioUploadForm, refusal: str, status: int
) -> HttpResponse:
    """The upload's error beside the upload form: with htmx just that block (the page stays,
    with the chosen file still selected), else the whole catalogue, focused on the error."""
    if request.htmx:  # type: ignore[attr-defined]
        context = {
            "upload": form,
            "upload_refusal": refusal,
            "scenario_error": getattr(form, "scenario_error", None),
            "kept": True,
        }
        return render(request, "dashboard/upload_error.html", context, status=status)
    return _catalogue(request, upload=form, upload_refusal=refusal, status=status)


# -- joining ---------------------------------------------------------------------------------
@require_GET
def join(request: HttpRequest, code: str = "") -> HttpResponse:
    """The attendee link /r/KT4MXQPW/ (or the join form's ?code=)."""
    code = code or request.GET.get("code", "")
    # Failed lookups are limited per address, and an address past the limit is refused before
    # the lookup: a right guess then gets the same answer as a wrong one.
    address, rate = ratelimit.client_key(request), setting("LAB_RATE_JOIN_FAIL", (30, 60.0))
    decision = ratelimit.peek("join-fail", address, rate)
    if decision:
        room = rooms.find_by_code(code)
        if room is not None:
            compare_id = compares.of_room(room)  # a pane of a compare: both panes
            return redirect("compare", compare_id) if compare_id else redirect("room", room.id)
        decision = ratelimit.check("join-fail", address, rate)
        if decision:
            return render(
                request,
                "dashboard/no_room.html",
                {"code": rooms.normalize_code(code)[:16]},
                status=404,
            )
    response = HttpResponse(
        f"Too many wrong room codes from your address: try again in {decision.retry_after_s} s.",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(decision.retry_after_s)
    return response


@require_GET
def present(request: HttpRequest, room_id: str, key: str) -> HttpResponse:
    """The presenter link: a valid key makes this browser a presenter of the room."""
    room = rooms.live_room(room_id)
    if room is None or not rooms.check_key(room, key):
        return HttpResponseForbidden(
            "This presenter link is not valid (or its room expired). Ask whoever made the room "
            "for the current link.",
            content_type="text/plain; charset=utf-8",
        )
    rooms.grant_presenter(request.session, room.id)
    rooms.touch(room.id)
    return redirect("room", room_id=room.id)


# -- the room --------------------------------------------------------------------------------
def _record(room_id: str) -> Any:
    record = rooms.live_room(room_id)
    if record is None:
        raise Http404("No such room: it may have expired.")
    return record


@require_GET
def room_page(request: HttpRequest, room_id: str) -> HttpResponse:
    record = _record(room_id)
    presenter = rooms.is_presenter(request.session, room_id)
    voter = rooms.voter_id(request.session)  # the WebSocket reads it from the session too
    page = call("page", room_id=room_id, presenter=presenter)
    if page.get("error"):
        return HttpResponse(page["error"], status=503, content_type="text/plain; charset=utf-8")
    rooms.touch_if_stale(record)
    token = format_html(
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request)
    )
    panels = {
        key.replace("-", "_"): html.replace(CSRF_MARK, token)
        for key, html in page["panels"].items()
    }
    key = rooms.shown_key(request.session, room_id) if presenter else None
    attendee_url = (
        request.build_absolute_uri(reverse("join", args=[record.code])) if record.code else ""
    )
    context = {
        "room": {"id": room_id, "kind": record.kind, "code": record.code},
        "scenario": {"transactional": page["transactional"], "consumers": page["consumers"]},
        "panels": panels,
        "lanes_html": page["lanes_html"],
        "seq": page["seq"],
        "title": page["title"],
        "role": "presenter" if presenter else "attendee",
        "attendee_url": attendee_url,
        "presenter_url": (
            request.build_absolute_uri(reverse("present", args=[room_id, key])) if key else ""
        ),
        "run_id": record.run_id,
        "ask": AskForm() if presenter and record.kind == "workshop" else None,
        "my_vote": workshop.my_vote(room_id, voter),
        "expiry_minutes": record.idle_expiry_s // 60,
        "join_qr": workshop_panels.join_qr(attendee_url) if presenter else "",
        # "Let real Kafka clients in": a presenter's (or a private room's maker's) button.
        "kafka_button": presenter and record.kind != "view" and settings.LAB_KAFKA_LISTENERS,
    }
    return render(request, "dashboard/room.html", context)


def _refuse(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """A refusal as plain text with its real status, htmx or not: static/js/errors.js shows it
    next to the form or control that caused it (htmx swaps nothing on an error status)."""
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    if request.htmx:  # type: ignore[attr-defined]
        response["HX-Reswap"] = "none"
    return _rated(response, message)


def _refusal_of(result: dict[str, Any]) -> str:
    """A runtime operation's refusal: one that frees up with time (busy) becomes a 429."""
    message = str(result["error"])
    return workshop.busy(message) if result.get("busy") else message


def _rated(response: HttpResponse, message: str) -> HttpResponse:
    """A refusal for going past a rate is a 429 saying when to retry; any other refusal keeps
    its status."""
    if isinstance(message, workshop.Refusal):
        response["Retry-After"] = str(message.retry_after_s)
        if response.status_code >= 400:
            response.status_code = 429
    return response


def _done(request: HttpRequest, room_id: str) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponse(status=204)
    return redirect("room", room_id=room_id)


NOT_PRESENTER = workshop.NOT_PRESENTER


def presenters_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A POST to a live room that only its presenters may make (the role is checked here,
    on the server, whatever the page showed)."""

    @require_POST
    @wraps(view)
    def checked(request: HttpRequest, room_id: str) -> HttpResponse:
        _record(room_id)
        if not rooms.is_presenter(request.session, room_id):
            return _refuse(request, NOT_PRESENTER, 403)
        return view(request, room_id)

    return checked


@presenters_only
def control(request: HttpRequest, room_id: str) -> HttpResponse:
    """A playback control or fault button (htmx: 204, the change arrives in the next frame)."""
    refusal = workshop.rate_refusal(request, "control")
    if refusal:
        return _refuse(request, refusal, 429)
    fields = {k: request.POST[k] for k in CONTROL_FIELDS if k in request.POST}
    result = call("control", room_id=room_id, fields=fields, presenter=True)
    if result.get("error"):
        return _refuse(request, _refusal_of(result), 503 if result.get("unavailable") else 400)
    return _done(request, room_id)


@require_GET
def lane(request: HttpRequest, room_id: str, partition: str) -> HttpResponse:
    """A window of a partition's log at any offset ("jump to offset")."""
    _record(room_id)
    try:
        offset = int(request.GET.get("offset", ""))
    except ValueError:
        return HttpResponseBadRequest("offset must be a whole number", content_type="text/plain")
    if not 0 <= offset <= 10**12:
        return HttpResponseBadRequest(
            "offset must be between 0 and 10^12", content_type="text/plain"
        )
    page = not request.htmx  # type: ignore[attr-defined]
    result = call("lane", room_id=room_id, partition=partition, offset=offset, page=page)
    if result.get("error"):
        return HttpResponse(result["error"], status=503, content_type="text/plain")
    if result["status"] == 404:
        raise Http404(result["html"])
    return HttpResponse(result["html"])


@require_POST
def fork(request: HttpRequest, room_id: str) -> HttpResponse:
    """ "Try it yourself" (a sandbox) or "look around on my own" (a detached view)."""
    _record(room_id)
    kind = request.POST.get("kind", "sandbox")
    if kind not in ("sandbox", "view"):
        return _refuse(request, "kind must be sandbox or view", 400)
    refusal = workshop.rate_refusal(request, "fork")
    if refusal:
        return _refuse(request, refusal, 429)
    # The browser's session token: the runtime limits copies per browser too (forking.py).
    result = call(
        "fork",
        room_id=room_id,
        kind=kind,
        client=rooms.voter_id(request.session),
        presenter=rooms.is_presenter(request.session, room_id),
    )
    if result.get("error"):
        return _refuse(request, _refusal_of(result), 503 if result.get("unavailable") else 400)
    rooms.grant_presenter(request.session, result["room_id"])
    if kind == "sandbox":
        rooms.remember_run(request.session, result["run_id"])  # "Saved runs" on the home page
    url = reverse("room", args=[result["room_id"]])
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@presenters_only
def ask(request: HttpRequest, room_id: str) -> HttpResponse:
    """Predict, then reveal: put a question to the room (presenters only)."""
    form = AskForm(request.POST)
    if not form.is_valid():
        return _refuse(request, form.error_text(), 400)
    result = call(
        "ask",
        room_id=room_id,
        prompt=form.cleaned_data["prompt"],
        choices=form.choices(),
        correct=form.correct_index(),
    )
    if result.get("error"):
        return _refuse(request, _refusal_of(result), 400)
    return _done(request, room_id)


@presenters_only
def reveal(request: HttpRequest, room_id: str) -> HttpResponse:
    """Reveal (the run plays on), or with close=1 take the question down."""
    result = call("reveal", room_id=room_id, close=request.POST.get("close") == "1")
    if result.get("error"):
        return _refuse(request, _refusal_of(result), 400)
    return _done(request, room_id)


@presenters_only
def kafka(request: HttpRequest, room_id: str) -> HttpResponse:
    """Open (listen=1) or close (listen=0) the room's Kafka listeners for real clients."""
    refusal = workshop.rate_refusal(request, "control")
    if refusal:
        return _refuse(request, refusal, 429)
    listen = request.POST.get("listen", "")
    if listen not in ("0", "1"):
        return _refuse(request, f"listen must be 1 (open) or 0 (close), not {listen!r}.", 400)
    result = call("kafka", room_id=room_id, listen=listen == "1", presenter=True)
    if result.get("error"):
        return _refuse(request, _refusal_of(result), 503 if result.get("unavailable") else 400)
    return _done(request, room_id)


@presenters_only
def end(request: HttpRequest, room_id: str) -> HttpResponse:
    """End the room: viewers are told, the join code stops working, the run stays saved."""
    result = call("end", room_id=room_id)
    if result.get("error"):
        return _refuse(request, _refusal_of(result), 503 if result.get("unavailable") else 400)
    url = reverse("run", args=[result["run_id"]]) if result.get("run_id") else reverse("home")
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@require_POST
def vote(request: HttpRequest, room_id: str) -> HttpResponse:
    _record(room_id)
    if rooms.is_presenter(request.session, room_id):
        return _refuse(request, workshop.PRESENTERS_DO_NOT_VOTE, 403)
    question, choice = request.POST.get("question", ""), request.POST.get("choice", "")
    address = ratelimit.client_key(request)
    refusal = workshop.rate_refusal(request, "vote") or workshop.key_refusal(
        "vote-ip", workshop.vote_ip_key(address, room_id, question)
    )
    if refusal:
        return _refuse(request, refusal, 429)
    error = workshop.cast_vote(room_id, question, choice, rooms.voter_id(request.session))
    if error:
        return _refuse(request, error, 400)
    call("tally", room_id=room_id)
    if request.htmx:  # type: ignore[attr-defined]
        asked = Question.objects.filter(id=int(question)).first()
        return HttpResponse(workshop.my_vote_fragment(asked, int(choice)))
    return redirect("room", room_id=room_id)
