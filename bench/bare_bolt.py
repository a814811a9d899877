"""The baseline for bench/burst.py: a bare Bolt AsyncApp with no storage.

It acks each DM the way Bolt does (before the listener runs) and posts one
reply in its thread, as taskbot does for a one-step request whose result is
ready by the time its reply goes out (the result is folded into that reply). Configured by the
same environment variables as the bot (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET,
SLACK_API_URL, HOST, PORT).
"""

from __future__ import annotations

import os
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build() -> AsyncApp:
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"], timeout=10
    )
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.event("message")
    async def on_message(event: dict[str, Any], client: AsyncWebClient) -> None:
        channel, ts = event["channel"], event["ts"]
        await client.chat_postMessage(channel=channel, thread_ts=ts, text="Done: research")

    return app


if __name__ == "__main__":
    build().start(
        port=int(os.environ["PORT"]), path="/slack/events", host=os.environ.get("HOST", "127.0.0.1")
    )
