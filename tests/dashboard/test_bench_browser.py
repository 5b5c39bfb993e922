"""The browser benchmark's arithmetic: the page's main thread, from a Chromium trace."""

import json

from dashboard.management.commands.bench_browser import main_thread, report


def span(name: str, ts: int, dur: int, tdur: int, tid: int = 1) -> dict[str, object]:
    return {"name": name, "ph": "X", "pid": 7, "tid": tid, "ts": ts, "dur": dur, "tdur": tdur}


def test_tasks_and_the_work_in_them_are_counted_on_the_busiest_renderer_main_thread() -> None:
    names = [
        {"ph": "M", "name": "thread_name", "pid": 7, "tid": tid, "args": {"name": "CrRendererMain"}}
        for tid in (1, 2)
    ]
    trace = {
        "traceEvents": [
            *names,
            span("RunTask", 0, 30_000, 20_000),
            span("FunctionCall", 1_000, 10_000, 8_000),
            span("Layout", 2_000, 3_000, 3_000),  # forced by the script: inside it
            span("RunTask", 40_000, 70_000, 60_000),
            span("Paint", 41_000, 5_000, 5_000),
            span("RunTask", 0, 1_000, 1_000, tid=2),  # another page's renderer
        ]
    }

    main = main_thread(json.dumps(trace).encode())

    assert main.tasks == [20.0, 60.0]
    assert main.kinds["FunctionCall"] == 5.0  # its own time, without the layout it forced
    assert main.kinds["Layout"] == 3.0
    assert main.kinds["Paint"] == 5.0
    assert main.kinds["RunTask"] == 80.0 - 8.0 - 5.0
    text = report(
        {"handler": [10.0, 70.0], "longTasks": [60.0], "longFrames": [[70.0, 20.0]]},
        2.0,
        "permessage-deflate",
        main,
    )
    assert "frames handled: 2 in 2.0 s (1.0/s); WebSocket extensions: permessage-deflate" in text
    assert "over 50 ms: 1" in text
    assert "40.0 ms per frame handled; longest task 60.0 ms, tasks over 50 ms: 1" in text
    assert "FunctionCall 2.5" in text
