"""Requests being answered right now, so background work can let them go first.

Slack wants its ack within 3 seconds and an API caller is waiting too, while the
work those requests start (agents, the outbox) has no one waiting on the line.
All of it shares one event loop, which runs whatever is ready in turn: every
piece of background work that is ready when an ack awaits something pushes that
ack back, and a burst leaves hundreds of them ready at once.

So a front end holds `serving()` while it answers a request, and background
work runs its pieces (a unit of work, a post) inside `admitted()`:
- while nothing is being answered, up to `lanes` pieces run at once (a CPU-bound
  loop does not go faster with more, and an ack that arrives waits behind few);
- while something is, one piece at a time, and only one every `trickle`
  seconds, so a flood slows the work down but never stops it.
Waiting pieces go in first come, first served, except that pieces marked `first`
(delivering replies that are ready) go before the rest (starting more work):
people wait for replies, and a post's wait for Slack then overlaps other work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator

#: while requests are being answered, one waiting piece of work is let in this often
TRICKLE_SECONDS = 0.02
#: pieces of background work running at once while no request is being answered
LANES = 4


class FrontDoor:
    def __init__(self, trickle: float = TRICKLE_SECONDS, lanes: int = LANES) -> None:
        self.trickle = trickle
        self.lanes = lanes
        self._serving = 0
        self._active = 0
        self._last_busy_admission = float("-inf")
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._first: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        #: pieces of work that had to wait (for tests and metrics)
        self.waits = 0

    @property
    def serving_now(self) -> int:
        return self._serving

    @property
    def active_now(self) -> int:
        return self._active

    @property
    def waiting_now(self) -> int:
        return sum(1 for w in (*self._first, *self._waiting) if not w.done())

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Held by a front end for as long as it answers one request."""
        self._serving += 1
        try:
            yield
        finally:
            self._serving -= 1
            if self._serving == 0:
                self._admit()

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """Inside `serving()`: not answering while waiting for the client (its body
        still arriving), which may take as long as the client likes."""
        if self._serving == 0:  # not inside `serving()` after all
            yield
            return
        self._serving -= 1
        if self._serving == 0:
            self._admit()
        try:
            yield
        finally:
            self._serving += 1

    @contextlib.asynccontextmanager
    async def admitted(self, first: bool = False) -> AsyncIterator[None]:
        """Held by background work for one piece of it (see the module docstring)."""
        if self._first or (self._waiting and not first) or not self._may_enter():
            await self._wait_in_line(self._first if first else self._waiting)
        else:
            self._enter()
        try:
            yield
        finally:
            self._active -= 1
            self._admit()

    async def turn(self, first: bool = False) -> None:
        """Wait for a turn but take no lane: for work too small to bracket."""
        async with self.admitted(first):
            pass

    def _may_enter(self) -> bool:
        if self._serving == 0:
            return self._active < self.lanes
        return self._active == 0 and time.monotonic() - self._last_busy_admission >= self.trickle

    def _enter(self) -> None:
        self._active += 1
        if self._serving:
            self._last_busy_admission = time.monotonic()

    async def _wait_in_line(self, line: deque[asyncio.Future[None]]) -> None:
        self.waits += 1
        waiter = asyncio.get_running_loop().create_future()
        line.append(waiter)
        self._arm()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._active -= 1  # let in just as it was cancelled: pass the lane on
                self._admit()
            else:
                with contextlib.suppress(ValueError):
                    line.remove(waiter)
            raise

    def _admit(self) -> None:
        """Let in as many waiting pieces as the rules allow; else come back later."""
        while (self._first or self._waiting) and self._may_enter():
            waiter = (self._first or self._waiting).popleft()
            if not waiter.done():
                self._enter()
                waiter.set_result(None)
        self._arm()

    def _arm(self) -> None:
        """While requests are answered and nothing runs, the next trickle turn is a timer's."""
        waiting = self._first or self._waiting
        if self._timer is not None or not waiting or not self._serving or self._active:
            return
        due = self._last_busy_admission + self.trickle - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._admit()
