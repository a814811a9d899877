"""Test doubles that speak Slack's real wire format.

- ``FakeSlack``: a local fake Slack Web API (aiohttp on 127.0.0.1).
- ``SignedSender`` / ``sign``: deliver Slack-signed events, commands and
  interactions to the bot.
- ``payloads``: builders based on Slack's real sample payloads.
- ``fixtures``: the ``fake_slack`` pytest fixture.
"""

from tests.slackfake.server import (
    OK,
    ApiError,
    Call,
    ClickRefused,
    Delay,
    Fail,
    FakeSlack,
    Hold,
    RateLimited,
    ScriptStep,
    validate_blocks,
    validate_message,
    validate_view,
)
from tests.slackfake.signing import SentResponse, SignedSender, sign, signature

__all__ = [
    "OK",
    "ApiError",
    "Call",
    "ClickRefused",
    "Delay",
    "Fail",
    "FakeSlack",
    "Hold",
    "RateLimited",
    "ScriptStep",
    "SentResponse",
    "SignedSender",
    "sign",
    "signature",
    "validate_blocks",
    "validate_message",
    "validate_view",
]
