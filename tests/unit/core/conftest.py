"""Fixtures for the core tests (the database fixtures come from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.unit.core.helpers import Recorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
