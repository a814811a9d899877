"""Ack latency and throughput of the real bot, driven over signed HTTP on loopback.

Starts a fake Slack Web API in this process and `python -m bot` as a subprocess on
a fresh SQLite file (or DATABASE_URL=postgresql://… given with --database-url),
sends N signed DM events with C in flight, and prints:
- ack latency p50/p95/p99 and acknowledged events/s (persist-then-ack path),
- how long until every accepted reply and result reached the fake Slack.

    python bench/throughput.py --events 1000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SECRET, running_bot
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack:
            database_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
            async with running_bot(slack, database_url) as url:
                await run(slack, url, args.events, args.concurrency)


async def run(slack: FakeSlack, url: str, events: int, concurrency: int) -> None:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(events):
        queue.put_nowait(n)

    async with SignedSender(url + "/slack/events", SECRET) as sender:

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                n = queue.get_nowait()
                envelope = payloads.im_message(
                    f"research laptops {n}", user=f"U{n % 50}", channel=f"D{n % 50}"
                )
                start = time.perf_counter()
                response = await sender.event(envelope)
                if response.status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        acked_in = time.perf_counter() - started

    expected = 2 * len(latencies)  # accepted + research result per event
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len([c for c in slack.calls_to("chat.postMessage") if c.ok]) >= expected:
            break
        await asyncio.sleep(0.2)
    delivered_in = time.perf_counter() - started
    posted = len([c for c in slack.calls_to("chat.postMessage") if c.ok])

    ms = [v * 1000 for v in latencies]
    print(f"events sent            {events} ({concurrency} in flight)")
    print(f"acked (2xx)            {len(latencies)}   failed: {failures}")
    print(
        f"ack latency ms         p50 {statistics.median(ms):.1f}  p95 {pct(ms, 95):.1f}  "
        f"p99 {pct(ms, 99):.1f}  max {max(ms):.1f}"
    )
    print(f"acked events/s         {len(latencies) / acked_in:.0f}")
    print(
        f"replies delivered      {posted}/{expected} in {delivered_in:.1f} s "
        f"({posted / delivered_in:.0f} messages/s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
