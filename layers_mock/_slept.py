"""What `sleep` returns: one object both a synchronous caller and `asyncio` accept."""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any


def _one_turn(result: Any) -> Generator[None, None, Any]:
    yield  # one turn of the event loop, as `asyncio.sleep(0)` gives
    return result


class Slept(Coroutine[None, None, Any]):
    """The clock already moved when `sleep` was called, so a synchronous caller drops this and
    is done. It is a real coroutine (not merely awaitable) because `sleep` stands in for
    `asyncio.sleep`, whose result code hands to `create_task` and `asyncio.run`, which take
    coroutines only; `result` is what `asyncio.sleep(delay, result)` gives back. Its steps are
    a plain generator, so a result nobody awaits is no "never awaited" warning."""

    __slots__ = ("_steps",)

    def __init__(self, result: Any = None) -> None:
        self._steps = _one_turn(result)

    def __await__(self) -> Generator[None, None, Any]:
        return self._steps

    def send(self, value: None) -> None:
        return self._steps.send(value)

    def throw(self, *args: Any) -> None:
        return self._steps.throw(*args)

    def close(self) -> None:
        self._steps.close()
