pytest_plugins = ["tests.slackfake.fixtures", "tests.unit.storage.fixtures"]
