pytest_plugins = ["sextant.testing.fixtures"]
