"""manifest.yml is a valid Slack app manifest (schema v1) that matches the design."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.slackfake.payloads import reference_dir

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / "manifest.yml"
# The top-level manifest.schema.json $refs remote URLs; the versioned file is
# self-contained (only local "#/definitions/..." refs), so it validates offline.
SCHEMA_FILE = "schemas/manifest.schema.1.0.0.json"
EXAMPLE_FILE = "schemas/example.manifest.v1.valid.json"

ENDPOINT_PATH = "/slack/events"  # docs/ARCHITECTURE.md: POST /slack/events, Bolt's single endpoint
# Adding a scope is a conscious change: extend this list with the reason.
ALLOWED_BOT_SCOPES = {
    "app_mentions:read": "app_mention events",
    "im:history": "message.im events (DMs to the bot)",
    "chat:write": "chat.postMessage / chat.update / chat.postEphemeral",
    "commands": "the /tasks slash command",
    "im:write": "conversations.open to DM approvers",
}


def _load_json(relative: str) -> Any:
    return json.loads((reference_dir() / relative).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data = _load_json(SCHEMA_FILE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _errors(validator: jsonschema.Draft7Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def test_schema_has_no_remote_refs(schema: dict[str, Any]) -> None:
    refs = re.findall(r'"\$ref":\s*"([^"]*)"', json.dumps(schema))
    assert refs, "expected local $refs in the versioned schema"
    assert all(ref.startswith("#/") for ref in refs), [r for r in refs if not r.startswith("#")]


def test_manifest_is_valid(validator: jsonschema.Draft7Validator, manifest: dict[str, Any]) -> None:
    assert _errors(validator, manifest) == []
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}


def test_background_color_matches_schema_pattern(
    schema: dict[str, Any], manifest: dict[str, Any]
) -> None:
    # The schema spells the pattern as "regex", which JSON Schema ignores: check it here.
    color_schema = schema["definitions"]["app-manifests.v1.display_information.schema"][
        "properties"
    ]["background_color"]
    assert re.fullmatch(color_schema["regex"], manifest["display_information"]["background_color"])


def test_display_and_bot_user(manifest: dict[str, Any]) -> None:
    assert manifest["display_information"]["name"] == "taskbot"
    assert manifest["display_information"]["description"]
    bot_user = manifest["features"]["bot_user"]
    assert bot_user == {"display_name": "taskbot", "always_online": True}
    app_home = manifest["features"]["app_home"]
    # People must be able to DM the bot.
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is False


def test_urls_events_and_command_match_design(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    events = settings["event_subscriptions"]
    interactivity = settings["interactivity"]
    (command,) = manifest["features"]["slash_commands"]
    urls = {events["request_url"], interactivity["request_url"], command["url"]}
    assert len(urls) == 1, f"all Slack traffic goes to one endpoint, got {urls}"
    (url,) = urls
    assert url.startswith("https://") and url.endswith(ENDPOINT_PATH)

    assert sorted(events["bot_events"]) == ["app_mention", "message.im"]
    assert "user_events" not in events
    assert interactivity["is_enabled"] is True

    assert command["command"] == "/tasks"
    assert command["should_escape"] is False
    assert command["usage_hint"] == "[pending|failed|completed|<id>|cancel <id>|budget|help]"
    assert command["description"]

    assert settings["org_deploy_enabled"] is False
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_scopes_are_least_privilege(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "no user scopes"
    bot = scopes["bot"]
    assert len(bot) == len(set(bot)), "duplicate scope"
    unexpected = set(bot) - set(ALLOWED_BOT_SCOPES)
    assert not unexpected, f"scopes not in the allow-list: {unexpected}"
    # Each event and feature we use needs its scope.
    assert set(bot) == set(ALLOWED_BOT_SCOPES)
    assert "users:read" not in bot


def test_every_scope_has_a_reason_comment() -> None:
    lines = MANIFEST.read_text(encoding="utf-8").splitlines()
    for scope in ALLOWED_BOT_SCOPES:
        (line,) = [ln for ln in lines if re.match(rf"\s*-\s*{re.escape(scope)}\b", ln)]
        comment = line.partition("#")[2].strip()
        assert comment, f"scope {scope} needs a comment saying why"


def test_validator_accepts_slack_example(validator: jsonschema.Draft7Validator) -> None:
    assert _errors(validator, _load_json(EXAMPLE_FILE)) == []


def _break_missing_display(m: dict[str, Any]) -> None:
    del m["display_information"]


def _break_command_without_slash(m: dict[str, Any]) -> None:
    m["features"]["slash_commands"][0]["command"] = "sample-command"


def _break_unknown_setting(m: dict[str, Any]) -> None:
    m["settings"]["events_enabled"] = True


def _break_interactivity_flag_type(m: dict[str, Any]) -> None:
    m["settings"]["interactivity"]["is_enabled"] = "yes"


def _break_name_too_long(m: dict[str, Any]) -> None:
    m["display_information"]["name"] = "x" * 36


def _break_bot_user_without_name(m: dict[str, Any]) -> None:
    del m["features"]["bot_user"]["display_name"]


@pytest.mark.parametrize(
    "breaker",
    [
        _break_missing_display,
        _break_command_without_slash,
        _break_unknown_setting,
        _break_interactivity_flag_type,
        _break_name_too_long,
        _break_bot_user_without_name,
    ],
)
def test_validator_rejects_broken_manifests(
    validator: jsonschema.Draft7Validator, breaker: Any
) -> None:
    broken = copy.deepcopy(_load_json(EXAMPLE_FILE))
    breaker(broken)
    assert _errors(validator, broken), f"{breaker.__name__} was not rejected"


def test_validator_rejects_broken_copy_of_our_manifest(
    validator: jsonschema.Draft7Validator, manifest: dict[str, Any]
) -> None:
    broken = copy.deepcopy(manifest)
    broken["settings"]["event_subscriptions"]["request_url"] = "ftp://example.com/slack/events"
    assert _errors(validator, broken)
