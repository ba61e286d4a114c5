"""The command line: ``main`` parses and runs one command (one module each); ``output``
prints summaries, errors and JSON records."""

from connector.cli.main import main

__all__ = ["main"]
