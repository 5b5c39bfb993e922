"""``manage.py labworker``: run every room of the lab in this one process (scale-out)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dashboard.live import worker


class Command(BaseCommand):
    help = (
        "Run the room runtimes for web processes started with LAB_RUNTIME=worker "
        "(scale-out: Redis channel layer, any number of Daphne processes). Run exactly one."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if getattr(settings, "LAB_RUNTIME", "embedded") != "worker":
            raise CommandError(
                "labworker serves web processes in worker mode: set LAB_RUNTIME=worker (or "
                "REDIS_URL, which implies it) for this command and for every Daphne process."
            )
        self.stdout.write("Delivery Lab runtime worker: serving rooms (Ctrl-C stops).")
        self.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(worker.serve())
