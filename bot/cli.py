"""Entry points: `taskbot [serve]`, `taskbot console`, `taskbot db upgrade`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from bot import logs
from bot.settings import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        sys.exit(f"taskbot: bad configuration — {problems}")


def _logging(settings: Settings) -> None:
    secrets = (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.llm_api_key,
    )
    logs.configure(
        settings.log_level,
        settings.log_format,
        [s.get_secret_value() for s in secrets if s is not None],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="taskbot", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the Slack bot (default)")
    console = sub.add_parser("console", help="chat with taskbot in this terminal, no Slack needed")
    console.add_argument("--user", default="console-user", help="who you are in the task history")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    args = parser.parse_args(argv)
    settings = _settings()
    _logging(settings)

    if args.command == "console":
        from bot.console import run_console
        from bot.container import build

        async def console_main() -> None:
            container = await build(settings)
            try:
                await run_console(container, args.user)
            finally:
                await container.close()

        asyncio.run(console_main())
    elif args.command == "db":
        from storage.migrate import upgrade

        asyncio.run(upgrade(settings.database_url))
        print("taskbot: database is up to date")
    else:
        missing = settings.missing_for_slack()
        if missing:
            sys.exit(
                f"taskbot: missing {', '.join(missing)} — set them to connect to Slack "
                "(see README.md), or try taskbot without Slack: `taskbot console`."
            )
        from bot.server import serve

        asyncio.run(serve(settings))
