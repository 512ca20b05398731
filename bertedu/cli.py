"""The ``bertedu`` command: ``bertedu COMMAND [ARGS]``, each command a module in ``bertedu.commands``.

A mistake the user can fix (``bertedu.errors.UserError``: a missing file, a bad argument, a
damaged archive) is printed as one line and exits with status 2. Any other exception is a
bug in the course and keeps its traceback, so that it can be reported.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from bertedu.commands import COMMANDS
from bertedu.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertedu", description="Build BERT from scratch: the course's command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        build_parser().print_help()
        return 0
    if argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints "invalid choice" and exits 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    command = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"bertedu {name}", description=help_text)
    command.configure(parser)
    args = parser.parse_args(rest)
    try:
        return int(command.run(args) or 0)
    except UserError as error:
        # Our errors say what to do; a traceback would only hide that sentence.
        print(f"bertedu {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
