"""Serving /static/ from the ASGI app (Daphne alone does not), with bad paths answered 404.

Django's ``ASGIStaticFilesHandler`` raises ``SuspiciousFileOperation`` for a path that leaves
the static folders (``/static/../settings.py``, ``/static/%2e%2e/...``) and lets it escape as a
server error (500), and a path holding a NUL byte makes the file lookup raise ``ValueError``.
For a visitor either is simply a file that is not there.
"""

from __future__ import annotations

from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest


class StaticFiles(ASGIStaticFilesHandler):
    """``ASGIStaticFilesHandler`` that answers 404 to paths outside the static folders."""

    def serve(self, request: HttpRequest) -> Any:
        try:
            return super().serve(request)
        except (SuspiciousFileOperation, ValueError):
            raise Http404("No such static file.") from None
