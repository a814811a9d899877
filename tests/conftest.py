pytest_plugins = ["tests.slackfake.fixtures", "tests.storage.fixtures"]
