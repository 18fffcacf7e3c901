"""The shared gate's turn (http/turn.py): a free turn is taken without waiting, even while a
woken waiter has not run yet; waiters are let in first come, first served; a waiter that goes
away never leaves the others waiting."""

from __future__ import annotations

import asyncio

from layers_mock_server.http.turn import Turn


async def _yield() -> None:
    """Let the loop run what is ready now (the tasks just woken): no timer, no clock."""
    loop = asyncio.get_running_loop()
    tick = loop.create_future()
    loop.call_soon(tick.set_result, None)
    await tick


async def _waiter(turn: Turn, order: list[str], name: str, hold: bool = False) -> None:
    """A request taking the turn; `hold` keeps it across a loop trip, as one waiting for
    Redis does."""
    await turn.acquire()
    order.append(name)
    if hold:
        await _yield()
    turn.release()


def test_a_free_turn_is_taken_at_once_even_with_a_woken_waiter_not_run_yet() -> None:
    async def scenario() -> list[str]:
        turn, order = Turn(), []
        assert turn.take()

        task = asyncio.create_task(_waiter(turn, order, "waiter"))
        await _yield()  # it waits
        turn.release()  # ... and is woken; before it runs, another request comes
        assert turn.take()  # not queued behind it (asyncio.Lock would queue it)
        order.append("newcomer")
        turn.release()
        await task
        return order

    assert asyncio.run(scenario()) == ["newcomer", "waiter"]


def test_a_woken_waiter_that_finds_the_turn_held_again_stays_first_in_line() -> None:
    async def scenario() -> list[str]:
        turn, order = Turn(), []
        assert turn.take()

        first = asyncio.create_task(_waiter(turn, order, "first", hold=True))
        await _yield()
        second = asyncio.create_task(_waiter(turn, order, "second", hold=True))
        await _yield()
        turn.release()  # wakes `first`; a newcomer takes the turn and holds it meanwhile
        assert turn.take()
        await _yield()  # `first` ran, found it held, and waits again: ahead of `second`
        turn.release()
        await asyncio.gather(first, second)
        return order

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_woken_waiter_cancelled_before_it_ran_wakes_the_next() -> None:
    async def scenario() -> list[str]:
        turn, order = Turn(), []
        assert turn.take()

        gone = asyncio.create_task(_waiter(turn, order, "gone"))
        await _yield()
        staying = asyncio.create_task(_waiter(turn, order, "staying"))
        await _yield()
        turn.release()  # wakes `gone` ...
        gone.cancel()  # ... which goes away before it runs
        await asyncio.wait_for(staying, timeout=5)  # a liveness bound, not a wait for state
        assert gone.cancelled() and not turn.locked()
        return order

    assert asyncio.run(scenario()) == ["staying"]


def test_a_waiter_cancelled_while_waiting_leaves_the_line() -> None:
    async def scenario() -> tuple[list[str], int]:
        turn, order = Turn(), []
        assert turn.take()

        gone = asyncio.create_task(_waiter(turn, order, "gone"))
        staying = asyncio.create_task(_waiter(turn, order, "staying"))
        await _yield()
        gone.cancel()
        await _yield()
        turn.release()
        await staying
        return order, len(turn.waiters)

    assert asyncio.run(scenario()) == (["staying"], 0)
