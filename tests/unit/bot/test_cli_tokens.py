"""`taskbot token create|list|revoke`: the token is the last line, shown once, stored hashed."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import pytest

from bot.cli import main
from storage.uow import SqlUnitOfWorkFactory


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(["token", *args])
    return int(exited.value.code or 0), capsys.readouterr().out


def test_create_list_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    code, out = run(["create", "--user", "U0123ABCD", "--name", "ci"], capsys)
    token = out.strip().splitlines()[-1]
    assert code == 0 and re.fullmatch(r"tb_1_[A-Za-z0-9_-]{40,}", token)

    async def stored() -> list[str]:
        uow_factory = SqlUnitOfWorkFactory.from_url(url)
        try:
            async with uow_factory(read_only=True) as uow:
                found = await uow.api.live_token(1)
                return list(found or ())
        finally:
            await uow_factory.dispose()

    secret = token.split("_", 2)[2]
    assert asyncio.run(stored()) == ["U0123ABCD", hashlib.sha256(secret.encode()).hexdigest()]

    code, out = run(["list"], capsys)
    assert code == 0 and "U0123ABCD" in out and "ci" in out and "active" in out
    assert secret not in out
    assert run(["revoke", "1"], capsys)[0] == 0
    assert "revoked" in run(["list"], capsys)[1]
    assert run(["revoke", "1"], capsys)[0] == 1
    code, out = run(["create", "--user", "not a user"], capsys)
    assert code == 2 and "not a Slack user id" in out
