"""An OpenAI-compatible chat-completions client for the research agent (optional)."""

from __future__ import annotations

from typing import Any

import aiohttp


class ChatCompletionsModel:
    """One HTTP session for the process's life (opened at the first call, shut by
    `close`): each step reuses its pooled connection instead of a TCP and TLS
    handshake of its own."""

    def __init__(
        self, url: str, model: str, api_key: str | None = None, timeout: float = 30.0
    ) -> None:
        base = url.rstrip("/")
        self._url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self._model = model
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def complete(self, system: str, user: str) -> str:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "temperature": 0.2,
        }
        async with self._http().post(self._url, json=body, headers=headers) as response:
            response.raise_for_status()
            data = await response.json()
        content = data["choices"][0]["message"]["content"]
        if not isinstance(content, str) or not content.strip():
            raise ValueError("the model returned no text")
        return content.strip()
