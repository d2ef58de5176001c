"""``python -m autograder``: a thin CLI over the package's Python API (papermill's cli.py is the model)."""

from __future__ import annotations

import argparse
import importlib
import sys

from .exceptions import AutograderError

# verb -> module implementing it (HELP, add_arguments(parser), run(args) -> int)
COMMANDS = {
    "release": "autograder.release",
    "grade": "autograder.grade",
    "feedback": "autograder.feedback",
    "export": "autograder.export",
    "report": "autograder.report",
    "watch": "autograder.watch",
    "attempts": "autograder.attempts",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Instructor tools for the MLOps Bridge course. Run from the course directory "
        "(the folder holding nbgrader_config.py); plain `nbgrader ...` commands keep working there.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        epilog = getattr(module, "epilog", None)  # optional: more help after the options (e.g. the attempts policy)
        command = sub.add_parser(
            verb,
            help=module.HELP,
            description=module.__doc__,
            epilog=epilog() if epilog else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # nbgrader's apps take any setting as --Section.trait=value: verbs that honour nbgrader's configuration
    # (ACCEPTS_CONFIG_OVERRIDES) get them; anything else unknown is an error, as argparse would say
    module = importlib.import_module(COMMANDS[args.command])
    if extra and not (
        getattr(module, "ACCEPTS_CONFIG_OVERRIDES", False)
        and all(_is_override(a) or not a.startswith("-") for a in extra)
    ):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.config_overrides = extra
    try:
        return int(args.run(args) or 0)
    except AutograderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _is_override(argument: str) -> bool:
    """``--Section.trait=value`` or ``--Section.trait`` (its value follows)."""
    name = argument[2:].split("=", 1)[0]
    return argument.startswith("--") and "." in name and all(part.isidentifier() for part in name.split("."))
