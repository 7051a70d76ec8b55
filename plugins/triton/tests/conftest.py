pytest_plugins = ["sextant.testing.fixtures", "sextant_triton.testing"]
