from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

# Modules whose absence means "the engine is not written yet" rather than a bug in it.
_ENGINE_MODULES = {"broker", "broker.scenario"}


def builtin_scenarios() -> list[Any] | None:
    """The engine's built-in scenarios, or None while the engine is not installed."""
    try:
        from broker.scenario import builtin_scenarios as load
    except ImportError as exc:
        if exc.name not in _ENGINE_MODULES:
            raise  # the engine is there but broken: show the error, don't hide it
        return None
    return list(load())


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/home.html", {"scenarios": builtin_scenarios()})
