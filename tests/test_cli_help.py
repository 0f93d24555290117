"""Every ``smsq`` option says what it does, and every subcommand's ``--help`` ends with the
environment variables it reads, each one a variable ``.env.example`` documents."""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys

from tests.helpers.processes import ROOT
from worker import __version__
from worker.cli.commands import _parser
from worker.cli.environment import READS, commands, epilog


def documented() -> list[str]:
    text = (ROOT / ".env.example").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M)


def leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs and path:
            found[path] = parser
        for action in subs:
            for name, child in action.choices.items():
                walk(child, f"{path} {name}".strip())

    walk(_parser(), "")
    return found


def test_every_subcommand_lists_what_it_reads_and_each_name_is_documented() -> None:
    variables = documented()
    leaves = leaf_parsers()

    assert sorted(commands(_parser())) == sorted(leaves) == sorted(READS)
    for command, parser in leaves.items():
        assert parser.epilog == epilog(command)
        assert parser.format_help().rstrip().endswith(epilog(command).split()[-1])
        for name in READS[command]:
            assert fnmatch.filter(variables, name), f"{command}: {name} is not in .env.example"


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{command} {action.option_strings or action.dest}"
        for command, parser in leaf_parsers().items()
        for action in parser._actions
        if action.help is None and not isinstance(action, argparse._HelpAction)
    ]

    assert missing == []


def test_help_and_version_through_the_real_command() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", *args],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    version = run("--version")
    stats = run("stats", "--help")

    assert (version.returncode, version.stdout) == (0, f"smsq {__version__}\n")
    assert stats.returncode == 0
    assert stats.stdout.splitlines()[-1] == "environment: REDIS_URL (see .env.example)"


def test_readme_exit_codes_are_the_ones_the_cli_uses() -> None:
    from worker.cli import commands as cli

    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    codes = [int(m) for m in re.findall(r"^\| `(\d+)` \|", table, re.M)]

    assert codes == [
        cli.EXIT_OK,
        cli.EXIT_REFUSED,
        cli.EXIT_CONFIG,
        cli.EXIT_INTERRUPTED,
        cli.EXIT_BROKEN_PIPE,
        128 + 15,
    ]
