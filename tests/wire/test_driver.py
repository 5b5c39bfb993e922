"""The driver: the virtual clock follows the loop's clock; a failing action does not stop it."""

from __future__ import annotations

import asyncio

import pytest

from broker.scheduler import Scheduler
from broker.wire.driver import Driver

pytestmark = pytest.mark.timeout(10)


async def until(check: object, timeout_s: float = 5) -> None:
    async def poll() -> None:
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout_s)


async def test_due_actions_run_when_wall_time_reaches_them_even_after_a_failure() -> None:
    loop = asyncio.get_running_loop()
    scheduler = Scheduler(seed=1)
    ran: list[tuple[str, int, float]] = []
    start = loop.time()

    def note(name: str) -> None:
        ran.append((name, scheduler.now_ms, loop.time() - start))

    def fail() -> None:
        raise RuntimeError("an engine bug")

    scheduler.at(60, fail)
    scheduler.at(80, note, "later")
    scheduler.at(0, note, "now")
    driver = Driver(scheduler, loop)
    driver.pump()
    assert [name for name, _, _ in ran] == ["now"]
    await until(lambda: len(ran) == 2)
    name, virtual_ms, wall_s = ran[1]
    assert (name, virtual_ms) == ("later", 80)
    assert wall_s >= 0.079  # not before its time on the wall clock
    driver.stop()
    assert driver.wall_ms(80) - driver.wall_ms(0) == 80
