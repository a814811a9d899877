"""Make the storage fixtures (database_url, sqlite_url, postgres_url, engine, clock,
uow_factory) available to the core tests, which run against real databases."""

from tests.storage.fixtures import (  # noqa: F401
    clock,
    database_url,
    engine,
    postgres_url,
    sqlite_url,
    uow_factory,
)
