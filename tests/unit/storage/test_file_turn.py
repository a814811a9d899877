"""The SQLite writer's turn across processes (storage.engine.FileTurn): a second
engine on the same file, standing in for another process, waits for the first's
transaction and gets its turn as soon as that one commits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.engine import create_engine
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock


@pytest.fixture
async def two_processes(tmp_path: Path) -> list[SqlUnitOfWorkFactory]:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    await upgrade(url)
    factories = [SqlUnitOfWorkFactory(create_engine(url), FakeClock()) for _ in range(2)]
    yield factories
    for factory in factories:
        await factory.dispose()


async def test_the_other_process_writes_as_soon_as_the_first_commits(
    two_processes: list[SqlUnitOfWorkFactory],
) -> None:
    first, second = two_processes
    delays: list[float] = []
    for n, hold in enumerate((0.25, 0.31, 0.37, 0.43, 0.49)):
        async with first() as uow:
            await uow.inbox.add(f"Ev{n}a", first.clock.now())
            waiting = asyncio.create_task(_add_at(second, f"Ev{n}b"))
            await asyncio.sleep(hold)
            assert not waiting.done()  # its turn comes after this transaction
        committed = time.monotonic()
        delays.append(await waiting - committed)

    # woken at once; SQLite's own busy wait polls every 100 ms by then
    assert max(delays) < 0.05, delays


async def _add_at(factory: SqlUnitOfWorkFactory, event_id: str) -> float:
    await _add(factory, event_id)
    return time.monotonic()


async def test_a_writer_cancelled_while_waiting_gives_both_locks_back(
    two_processes: list[SqlUnitOfWorkFactory],
) -> None:
    first, second = two_processes
    async with first() as uow:
        await uow.inbox.add("Ev1", first.clock.now())
        waiting = asyncio.create_task(_add(second, "Ev2"))
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    assert await asyncio.wait_for(_add(second, "Ev3"), timeout=5)
    assert await asyncio.wait_for(_add(first, "Ev4"), timeout=5)


async def _add(factory: SqlUnitOfWorkFactory, event_id: str) -> bool:
    async with factory() as uow:
        return await uow.inbox.add(event_id, factory.clock.now())


@pytest.mark.parametrize(
    ("url", "writer_file"),
    [
        ("sqlite+aiosqlite:///{dir}/plain.db", "{dir}/plain.db-writer"),
        ("sqlite+aiosqlite:///file:{dir}/named.db?uri=true", "{dir}/named.db-writer"),
        ("sqlite+aiosqlite:///file::memory:?cache=shared&uri=true", None),
    ],
)
async def test_the_turn_is_a_file_beside_the_database_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, writer_file: str | None
) -> None:
    """A URI filename names its file by its path part: `file:` is no directory."""
    monkeypatch.chdir(tmp_path)  # where a relative name would land
    engine = create_engine(url.format(dir=tmp_path))
    factory = SqlUnitOfWorkFactory(engine, FakeClock())
    try:
        async with factory() as uow:
            await uow.session.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            await uow.session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        await factory.dispose()
    written = _writer_files(tmp_path)
    expected = {writer_file.format(dir=tmp_path)} if writer_file else set()
    assert written == expected


def _writer_files(directory: Path) -> set[str]:
    return {str(p) for p in directory.iterdir() if p.name.endswith("-writer")}
