"""The fork benchmark, on a small room: both copies made, the same state, the figures printed."""

import io
import re

from django.core.management import call_command


def test_a_small_run_prints_both_copies_and_the_loop_stalls() -> None:
    out = io.StringIO()
    call_command("bench_fork", backlog=500, steps=300, stdout=out)
    text = out.getvalue()
    assert "room: 500 records at once, 300 engine steps" in text, text
    assert re.search(r"copy on the loop: \d+ ms, the loop stalled \d+ ms", text), text
    assert "same state: True" in text, text
    assert re.search(r"RSS: \d+ MB before", text), text
