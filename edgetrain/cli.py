"""The ``edgetrain`` command line (contract: ../docs/cli.md).

Each subcommand lives in its own module under ``edgetrain.commands`` (or, for
those a package built on edgetrain adds, in a module registered under the
entry-point group ``edgetrain.commands``) and exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the handler. Usage errors and typed edgetrain errors
become one clear line on stderr and exit status 2; nothing else is caught.
"""
from __future__ import annotations

import argparse
import importlib
from importlib import metadata
import os
import sys

from . import __version__
from .errors import EdgetrainError

# Subcommand modules, in the order `edgetrain --help` lists them.
COMMAND_MODULES: list[str] = ["demo", "run", "experiment", "plan", "export", "inspect", "bench"]
# Packages built on edgetrain add subcommands under this entry-point group: a module with register(sub)
# (firmware_sim: verify-commit and firmware). They follow the built-in ones, by name.
COMMAND_GROUP = "edgetrain.commands"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``edgetrain COMMAND: error: ...`` and where to look, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edgetrain",
        description="On-device training for microcontrollers whose weights live in NVM.",
    )
    parser.add_argument("--version", action="version", version=f"edgetrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edgetrain.commands.{name}").register(sub)
    for entry in sorted(metadata.entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load().register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgetrainError as exc:
        print(f"edgetrain {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (`edgetrain plan ... | head -1`): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
