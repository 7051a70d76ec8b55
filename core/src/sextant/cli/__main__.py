from sextant.cli import entry

entry()
