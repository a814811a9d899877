"""The websocket end of Socket Mode: pushes envelopes to the app, records its acks."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web


class SocketModeLink:
    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._acked = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake"},
                "connection_info": {"app_id": "A0001"},
            }
        )
        self._connected.set()
        async for message in socket:
            if message.type is WSMsgType.TEXT:
                body = json.loads(message.data)
                async with self._acked:
                    self.acks[body["envelope_id"]] = body
                    self._acked.notify_all()
        return socket

    async def connected(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def push(
        self, payload: dict[str, Any], kind: str = "events_api", retry_attempt: int = 0
    ) -> str:
        """Send one envelope as Slack does; returns its envelope_id."""
        assert self._socket is not None, "the app has not connected"
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        await self._socket.send_str(json.dumps(envelope))
        return envelope_id

    async def ack_for(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: envelope_id in self.acks), timeout)
            return self.acks[envelope_id]
