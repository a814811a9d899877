"""The front door: background work waits while requests are answered, without
ever being stopped by them."""

from __future__ import annotations

import asyncio

import pytest

from core.front_door import FrontDoor

#: long enough that no trickle turn comes during a test
NEVER = 3600.0


async def _piece(door: FrontDoor, log: list[str], name: str, hold: asyncio.Event) -> None:
    async with door.admitted():
        log.append(name)
        await hold.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_while_nothing_is_answered_up_to_lanes_pieces_run_at_once() -> None:
    door = FrontDoor(trickle=NEVER, lanes=3)
    hold, log = asyncio.Event(), list[str]()
    pieces = [asyncio.create_task(_piece(door, log, f"p{n}", hold)) for n in range(5)]
    await _settle()
    assert log == ["p0", "p1", "p2"]
    assert (door.active_now, door.waiting_now) == (3, 2)
    hold.set()
    await asyncio.gather(*pieces)
    assert log == ["p0", "p1", "p2", "p3", "p4"]
    assert door.active_now == 0


async def test_a_request_being_answered_holds_new_pieces_until_it_is_answered() -> None:
    door = FrontDoor(trickle=NEVER, lanes=3)
    hold, log = asyncio.Event(), list[str]()
    hold.set()
    with door.serving():
        first = asyncio.create_task(_piece(door, log, "first", hold))
        await _settle()
        assert log == ["first"]  # the first trickle turn is free
        later = [asyncio.create_task(_piece(door, log, f"p{n}", hold)) for n in range(3)]
        await _settle()
        assert log == ["first"]
        assert door.waiting_now == 3
    await asyncio.gather(first, *later)
    assert log == ["first", "p0", "p1", "p2"]  # in the order they came


async def test_a_flood_of_requests_slows_background_work_but_never_stops_it() -> None:
    door = FrontDoor(trickle=0.0, lanes=3)
    hold, log = asyncio.Event(), list[str]()
    hold.set()
    with door.serving():  # never answered within this test
        pieces = [asyncio.create_task(_piece(door, log, f"p{n}", hold)) for n in range(4)]
        async with asyncio.timeout(10):
            await asyncio.gather(*pieces)
    assert log == ["p0", "p1", "p2", "p3"]


async def test_while_a_request_is_answered_one_piece_runs_at_a_time() -> None:
    door = FrontDoor(trickle=0.0, lanes=3)
    inside = peak = 0

    async def piece() -> None:
        nonlocal inside, peak
        async with door.admitted():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    with door.serving():
        await asyncio.gather(*(piece() for _ in range(6)))
    assert peak == 1


async def test_a_piece_cancelled_while_waiting_leaves_the_line() -> None:
    door = FrontDoor(trickle=NEVER, lanes=1)
    hold, log = asyncio.Event(), list[str]()
    running = asyncio.create_task(_piece(door, log, "running", hold))
    await _settle()
    doomed = asyncio.create_task(_piece(door, log, "doomed", hold))
    after = asyncio.create_task(_piece(door, log, "after", hold))
    await _settle()
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert door.waiting_now == 1
    hold.set()
    await asyncio.gather(running, after)
    assert log == ["running", "after"]
    assert door.active_now == 0


async def test_a_piece_cancelled_as_it_is_let_in_passes_its_lane_on() -> None:
    door = FrontDoor(trickle=NEVER, lanes=1)
    hold, log = asyncio.Event(), list[str]()
    doomed: asyncio.Task[None] | None = None

    async def running() -> None:
        async with door.admitted():
            await hold.wait()
        assert doomed is not None
        doomed.cancel()  # handed the lane a moment ago, cancelled before it could run

    first = asyncio.create_task(running())
    await _settle()
    doomed = asyncio.create_task(_piece(door, log, "doomed", hold))
    after = asyncio.create_task(_piece(door, log, "after", hold))
    await _settle()
    hold.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await asyncio.wait_for(after, timeout=10)
    assert log == ["after"]
    assert door.active_now == 0


async def test_turn_waits_like_a_piece_but_holds_no_lane() -> None:
    door = FrontDoor(trickle=NEVER, lanes=1)
    await door.turn()
    assert door.active_now == 0
    with door.serving():
        await door.turn()  # the free trickle turn
        waiting = asyncio.create_task(door.turn())
        await _settle()
        assert not waiting.done()
    await asyncio.wait_for(waiting, timeout=10)


async def test_replies_that_are_ready_go_before_more_work() -> None:
    """Pieces marked `first` (the outbox) overtake waiting pieces that start more work."""
    door = FrontDoor(trickle=NEVER, lanes=1)
    hold, log = asyncio.Event(), list[str]()
    running = asyncio.create_task(_piece(door, log, "running", hold))
    await _settle()
    later = [asyncio.create_task(_piece(door, log, f"step{n}", hold)) for n in range(2)]
    await _settle()

    async def reply() -> None:
        async with door.admitted(first=True):
            log.append("reply")

    replying = asyncio.create_task(reply())
    await _settle()
    hold.set()
    await asyncio.gather(running, replying, *later)
    assert log == ["running", "reply", "step0", "step1"]


async def test_a_request_waiting_for_its_client_does_not_hold_pieces() -> None:
    """`aside()`: a request whose body is still arriving is not being answered yet."""
    door = FrontDoor(trickle=NEVER, lanes=2)
    hold, log = asyncio.Event(), list[str]()
    with door.serving():
        first = asyncio.create_task(_piece(door, log, "p0", hold))
        second = asyncio.create_task(_piece(door, log, "p1", hold))
        await _settle()
        assert log == ["p0"]  # the one turn while a request is answered
        with door.aside():
            await _settle()
            assert log == ["p0", "p1"] and door.serving_now == 0
        assert door.serving_now == 1
    with door.aside():  # outside `serving()`: nothing to set aside
        assert door.serving_now == 0
    hold.set()
    await asyncio.gather(first, second)
