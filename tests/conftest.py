pytest_plugins = ["tests.slackfake.fixtures"]
