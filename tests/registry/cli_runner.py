"""``reallabor``'s registry commands as a function over their arguments (no subprocess)."""

from __future__ import annotations

import argparse

from ingest.registry.cli import add_subcommands


def run_cli(*argv: str) -> int:
    """Parse ``argv`` as ``reallabor`` would and run the command; its exit code."""
    root = argparse.ArgumentParser(prog="reallabor")
    add_subcommands(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(argv)
    code: int = args.func(args)
    return code
