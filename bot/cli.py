"""Entry points: `taskbot [serve]`, `taskbot console`, `taskbot db upgrade`, `taskbot token …`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
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
        settings.webhook_secret,
    )
    logs.configure(
        settings.log_level,
        settings.log_format,
        [s.get_secret_value() for s in secrets if s is not None],
    )


_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


async def _token(settings: Settings, args: argparse.Namespace) -> int:
    from bot.api.auth import create_token
    from storage.migrate import upgrade
    from storage.uow import SqlUnitOfWorkFactory

    await upgrade(settings.database_url)
    uow_factory = SqlUnitOfWorkFactory.from_url(settings.database_url)
    try:
        if args.token_action == "create":
            if not _USER_ID.match(args.user):
                print(f"taskbot: {args.user!r} is not a Slack user id (like U0123ABCD)")
                return 2
            token_id, token = await create_token(uow_factory, args.user, args.name)
            print(f"Token {token_id} for {args.user} created. It is shown only this once:")
            print(token)
        elif args.token_action == "list":
            async with uow_factory(read_only=True) as uow:
                tokens = await uow.api.tokens()
            for t in tokens:
                state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
                print(
                    f"{t.id}\t{t.user_id}\t{t.name or '-'}\t{t.created_at:%Y-%m-%d %H:%M}\t{state}"
                )
            if not tokens:
                print("no tokens")
        else:
            async with uow_factory() as uow:
                revoked = await uow.api.revoke_token(args.id, uow_factory.clock.now())
            print(f"Token {args.id} revoked." if revoked else f"No active token {args.id}.")
            return 0 if revoked else 1
        return 0
    finally:
        await uow_factory.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="taskbot", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the Slack bot (default)")
    console = sub.add_parser("console", help="chat with taskbot in this terminal, no Slack needed")
    console.add_argument("--user", default="console-user", help="who you are in the task history")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    token = sub.add_parser("token", help="API bearer tokens")
    token_sub = token.add_subparsers(dest="token_action", required=True)
    create = token_sub.add_parser("create", help="make a token (printed once, last line)")
    create.add_argument("--user", required=True, help="the Slack user id it acts as")
    create.add_argument("--name", default=None, help="a label, e.g. ci")
    token_sub.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = token_sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    args = parser.parse_args(argv)
    settings = _settings()
    _logging(settings)

    if args.command == "console":
        from bot.console.repl import run_console
        from bot.container import build

        if not settings.approvers:
            # one person at a terminal: with nobody else to ask, they approve their own
            settings = settings.model_copy(update={"allow_self_approval": True})

        async def console_main() -> None:
            container = await build(settings)
            try:
                await run_console(container, args.user)
            finally:
                await container.close()

        asyncio.run(console_main())
    elif args.command == "token":
        logging.getLogger().setLevel(logging.WARNING)  # the token must be the last line
        sys.exit(asyncio.run(_token(settings, args)))
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
