"""The storage fixtures (database_url, sqlite_url, postgres_url, engine, clock,
uow_factory) live in tests/storage/fixtures.py so other test packages can load
them as a plugin; this re-export makes them available here either way."""

from tests.storage.fixtures import (  # noqa: F401
    clock,
    database_url,
    engine,
    postgres_url,
    sqlite_url,
    uow_factory,
)
