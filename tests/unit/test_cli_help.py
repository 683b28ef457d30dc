"""``reallabor``'s parser as a whole: every command and option explained, unknown commands answered with
the full list (the lazily registered registry and simulator commands too), ``--version``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from importlib.metadata import version

import pytest

from ingest.cli import LAZY_COMMANDS, main, parser


def _walk(command: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    """Every action of ``command`` and of its subcommands, with the command line that reaches it."""
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            explained = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield f"{path} {name}", argparse.Action([], name, help=explained.get(name))
                yield from _walk(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def _overview() -> argparse.ArgumentParser:
    return parser([])  # no command: everything registered, as for `reallabor -h`


def test_every_command_option_and_positional_has_help_text() -> None:
    walked = list(_walk(_overview(), "reallabor"))
    missing = [
        f"{path}: {action.option_strings or action.dest}" for path, action in walked if not action.help
    ]
    assert missing == []
    commands = {path for path, _ in walked}
    assert {"reallabor buildings add", "reallabor households list", "reallabor simulate"} <= commands
    assert len(walked) > 100  # the walk reached the subcommands' options


def test_overview_has_every_command() -> None:
    commands = set(_top_level_commands(_overview()))
    assert set(LAZY_COMMANDS) <= commands
    assert {"config", "ingest", "up", "quarantine", "profiles"} <= commands


def _top_level_commands(root: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


@pytest.mark.parametrize("unknown", [["foo"], ["foo", "--config", "x.yaml"], ["--json", "users2"]])
def test_unknown_command_lists_every_command(unknown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(unknown)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err
    for command in _top_level_commands(_overview()):
        assert repr(command) in err, command


def test_known_commands_leave_the_slow_ones_out() -> None:
    """`reallabor ingest` (and the others of its kind) do not import the registry or the simulator."""
    for command in ("ingest", "config", "quarantine", "profiles", "up"):
        assert not set(LAZY_COMMANDS) & set(_top_level_commands(parser([command, "--help"]))), command
    assert "users" in _top_level_commands(parser(["users", "add"]))
    assert "simulate" not in _top_level_commands(parser(["users", "add"]))
    assert _top_level_commands(parser(["simulate"]))[-1] == "simulate"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"reallabor {version('reallabor-ingest')}\n"


def test_reallabor_alone_shows_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    shown = capsys.readouterr().err
    for command in _top_level_commands(_overview()):
        assert f"    {command} " in shown or f"    {command}\n" in shown, command
