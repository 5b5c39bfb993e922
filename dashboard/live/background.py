"""Long-lived tasks (a room's pacing, the expiry sweeper, relays) started from anywhere.

A task copies the contextvars of the code that creates it. When that code is a sync view's
``async_to_sync`` call, the copy holds asgiref's executor for the request's thread, which shuts
down as soon as the view returns: every later ``sync_to_async`` in the task (saving the run,
expiring rooms) then fails with "CurrentThreadExecutor already quit or is broken". So every task
that outlives the request that started it starts here, in a fresh, empty context: it behaves the
same whether a WebSocket, an HTTP view or the worker started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Run ``coro`` as a task of the running loop, outside the caller's context."""
    loop = asyncio.get_running_loop()
    return loop.create_task(coro, name=name, context=contextvars.Context())


def ensure(
    task: asyncio.Task[T] | None, start: Callable[[], Coroutine[Any, Any, T]], name: str
) -> asyncio.Task[T]:
    """``task`` while it still runs on the running loop; otherwise a new one from ``start()``
    (a room's or a compare's pacing task, restarted when a press finds it ended)."""
    if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
        return task
    return spawn(start(), name)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Stop ``task`` (if it runs) and wait until it has."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
