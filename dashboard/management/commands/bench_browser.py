"""``manage.py bench_browser``: the browser's main thread while a big room plays fast.

Opens the fan-out benchmark's room with a ``--backlog`` of records in ``orders-0`` (100,000 by
default: docs/performance.md, "A room whose partition holds 100,000 records") and a long stream
of orders after it, loads it in Debian's Chromium (driven by the plain ``playwright`` package,
as the browser tests do) as its presenter, presses ``--speed`` (16) and play, and for
``--seconds`` (or until the run ends) measures in the page:

- each frame's handling: from the htmx ws extension's ``htmx:wsBeforeMessage`` to the end of the
  task that received the message (the swap and every listener, room.js's included);
- long animation frames (``long-animation-frame``, Chromium 123+): frames whose script, style,
  layout and paint together took over 50 ms, with their blocking time;
- long tasks (``longtask``), for browsers without the former.

On a loaded machine those are wall-clock times, stretched by whatever else runs. So it also
records a Chromium trace of the play and sums the page's main thread's *CPU* time
(``RunTask`` events' thread duration on ``CrRendererMain``): per frame handled, and the longest
task. That is what the main thread needs, however busy the machine.

It prints those figures, the frames received per second and whether the WebSocket negotiated
per-message deflate (from Chromium's DevTools protocol). ``--trace FILE`` keeps the trace, for
DevTools' Performance panel.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands.bench_fanout import (
    BEAT,
    SPEEDS,
    bench_scenario,
    open_room,
    percentile,
)
from dashboard.management.commands.scaleout import Lab, LabError

CHROMIUM = "/usr/bin/chromium"
# A stream long enough to keep a room at 16x busy for about half a minute of wall time.
ORDERS = 20_000

# Installed before the page's own scripts: its listeners come first.
INSTRUMENT = """
(() => {
  const perf = (window.labPerf = { handler: [], longTasks: [], longFrames: [] });
  document.addEventListener("htmx:wsBeforeMessage", () => {
    const started = performance.now();
    // Microtasks run once the task that received the message has finished its listeners.
    queueMicrotask(() => perf.handler.push(performance.now() - started));
  }, true);
  const watch = (type, into) => {
    try {
      new PerformanceObserver((list) => list.getEntries().forEach((e) => into(e)))
        .observe({ type, buffered: false });
    } catch (e) { /* not supported by this browser */ }
  };
  watch("longtask", (e) => perf.longTasks.push(e.duration));
  watch("long-animation-frame", (e) => perf.longFrames.push([e.duration, e.blockingDuration]));
})();
"""


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    return (
        f"p50 {statistics.median(ordered):.1f} ms, p99 {percentile(ordered, 0.99):.1f} ms, "
        f"max {ordered[-1]:.1f} ms"
    )


@dataclass
class MainThread:
    """The page's main thread in a trace: CPU ms of each task, and of each kind of work."""

    tasks: list[float] = field(default_factory=list)
    kinds: dict[str, float] = field(default_factory=dict)


def main_thread(trace: bytes) -> MainThread:
    """From a Chromium trace, the ``CrRendererMain`` thread that ran the most (the page's, not
    another renderer's): each task's thread (CPU) duration, and the CPU time of each kind of
    work inside them (script, style, layout, HTML parsing...) without what nests in it."""
    events = json.loads(trace)
    events = events.get("traceEvents", []) if isinstance(events, dict) else events
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "thread_name"
        and e.get("args", {}).get("name") == "CrRendererMain"
    }
    threads: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for e in events:
        thread = (e.get("pid"), e.get("tid"))
        if e.get("ph") == "X" and "tdur" in e and thread in mains:
            threads.setdefault(thread, []).append(e)
    best = MainThread()
    for spans in threads.values():
        found = MainThread()
        spans.sort(key=lambda e: (e["ts"], -e["dur"]))
        open_spans: list[tuple[int, dict[str, Any]]] = []  # (end, span) enclosing the next
        for span in spans:
            while open_spans and open_spans[-1][0] <= span["ts"]:
                open_spans.pop()
            cpu = span["tdur"] / 1000
            if not open_spans:  # a task of the thread's own (RunTask, or what wraps it)
                found.tasks.append(cpu)
            else:
                parent = open_spans[-1][1]["name"]
                found.kinds[parent] = found.kinds.get(parent, 0.0) - cpu
            found.kinds[span["name"]] = found.kinds.get(span["name"], 0.0) + cpu
            open_spans.append((span["ts"] + span["dur"], span))
        if sum(found.tasks) > sum(best.tasks):
            best = found
    return best


def report(perf: dict[str, Any], seconds: float, deflate: str, main: MainThread) -> str:
    handler = [float(v) for v in perf["handler"]]
    long_tasks = [float(v) for v in perf["longTasks"]]
    long_frames = [(float(d), float(b)) for d, b in perf["longFrames"]]
    lines = [
        f"frames handled: {len(handler)} in {seconds:.1f} s ({len(handler) / seconds:.1f}/s); "
        f"WebSocket extensions: {deflate or 'none'}",
        f"per frame (message received to its task's end): {summary(handler)}; "
        f"over 50 ms: {sum(1 for v in handler if v > 50)}",
        f"long animation frames (> 50 ms, script + style + layout + paint): "
        f"{len(long_frames)}"
        + (
            f", longest {max(d for d, _b in long_frames):.0f} ms, blocking "
            f"{sum(b for _d, b in long_frames):.0f} ms in all"
            if long_frames
            else ""
        ),
        f"long tasks (> 50 ms): {len(long_tasks)}"
        + (f", longest {max(long_tasks):.0f} ms" if long_tasks else ""),
        f"main thread CPU (trace): {sum(main.tasks):.0f} ms in {seconds:.1f} s, "
        f"{sum(main.tasks) / max(1, len(handler)):.1f} ms per frame handled; longest task "
        f"{max(main.tasks, default=0):.1f} ms, tasks over 50 ms: "
        f"{sum(1 for v in main.tasks if v > 50)}",
        "where it goes (CPU ms per frame handled): "
        + ", ".join(
            f"{name} {ms / max(1, len(handler)):.1f}"
            for name, ms in sorted(main.kinds.items(), key=lambda kv: -kv[1])[:8]
            if "RunTask" not in name
        ),
    ]
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = (
        "Play a room whose partition holds --backlog records at --speed in Debian's Chromium "
        "and print the main thread's time per frame (and its long frames)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--backlog", type=int, default=100_000)
        parser.add_argument("--speed", default="16", help="playback speed (default 16)")
        parser.add_argument("--seconds", type=float, default=15.0)
        parser.add_argument("--url", default="", help="a running lab (default: start one)")
        parser.add_argument("--chromium", default=CHROMIUM)
        parser.add_argument(
            "--trace", default="", help="also write the Chromium trace here (for DevTools)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        speed = options["speed"]
        if speed not in SPEEDS or speed == BEAT:
            raise CommandError(f"--speed: one of {', '.join(SPEEDS)}")
        if not os.path.exists(options["chromium"]):
            raise CommandError(f"no Chromium at {options['chromium']} (apt-get install chromium)")
        lab = None
        url = options["url"].rstrip("/")
        if not url:
            lab = Lab(webs=1, redis=False, debug=False)
            try:
                lab.start()
            except LabError as exc:
                lab.cleanup()
                raise CommandError(str(exc)) from None
            url = lab.urls[0]
        try:
            room, cookie = open_room(url, bench_scenario(options["backlog"], ORDERS))
            text = self._measure(url, room, cookie, speed, options)
        finally:
            if lab is not None:
                lab.cleanup()
        self.stdout.write(text)

    def _measure(self, url: str, room: str, cookie: str, speed: str, options: Any) -> str:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright

        name, _, value = cookie.partition("=")
        extensions: list[str] = []
        with tempfile.TemporaryDirectory() as home, sync_playwright() as playwright:
            # Chromium writes into ~/.config and ~/.cache even with a temporary profile.
            for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
                os.environ.setdefault(var, home)
            browser = playwright.chromium.launch(
                executable_path=options["chromium"], args=["--no-sandbox"]
            )
            try:
                context = browser.new_context(viewport={"width": 1920, "height": 1080})
                context.add_cookies([{"name": name, "value": value, "url": url}])
                page = context.new_page()
                page.set_default_timeout(30_000)
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                cdp.on(
                    "Network.webSocketHandshakeResponseReceived",
                    lambda event: extensions.append(
                        {k.lower(): v for k, v in event["response"]["headers"].items()}.get(
                            "sec-websocket-extensions", ""
                        )
                    ),
                )
                page.add_init_script(INSTRUMENT)
                page.goto(f"{url}/rooms/{room}/")
                page.wait_for_function(
                    "() => document.getElementById('conn').textContent === 'live'"
                )
                page.locator(f'button.speed[value="{speed}"]').click()
                page.wait_for_function(
                    f"() => !!document.querySelector('button.speed.is-current[value=\"{speed}\"]')"
                )
                page.evaluate("Object.values(window.labPerf).forEach((list) => list.length = 0)")
                started = page.evaluate("performance.now()")
                browser.start_tracing(page=page, categories=["toplevel", "devtools.timeline", "v8"])
                page.locator("#btn-play-pause").click()
                page.wait_for_function(
                    "() => document.getElementById('btn-play-pause').value === 'pause'"
                )
                # Until the run ends (play shows again) or the time is up.
                with contextlib.suppress(PlaywrightTimeout):
                    page.wait_for_function(
                        "() => document.getElementById('btn-play-pause').value === 'play'",
                        timeout=options["seconds"] * 1000,
                    )
                seconds = (page.evaluate("performance.now()") - started) / 1000
                perf = page.evaluate("window.labPerf")
                trace = browser.stop_tracing()
                if options["trace"]:
                    with open(options["trace"], "wb") as out:
                        out.write(trace)
                main = main_thread(trace)
            finally:
                browser.close()
        return (
            f"room: {options['backlog']:,} records in orders-0, then {ORDERS:,} orders, at "
            f"{speed}x in Chromium ({options['chromium']})\n"
            + report(perf, seconds, extensions[-1] if extensions else "", main)
        )
