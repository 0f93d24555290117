"""The ``smsq`` command line: argument parsing and text output only.

Every command lives in :mod:`worker.cli.commands`; the operator commands (dead letters, replays,
inspection) in :mod:`worker.cli.operator`; their text rendering in :mod:`worker.cli.text`.
"""

from worker.cli.commands import main


__all__ = ["main"]
