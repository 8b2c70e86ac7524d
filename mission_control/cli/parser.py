"""The command line's grammar: global options accepted anywhere, sub-commands from each group's
module, and argparse's complaints turned into `UsageError` (exit 2, JSON under --json)."""
import argparse

from .. import __version__
from ..config import OPTIONS
from .failures import UsageError

#: The options of `config.OPTIONS` every command takes (the others belong to one sub-command).
GLOBAL_OPTIONS = tuple(option for option in OPTIONS if option.flag and option.command is None)
#: Global options that take a value, and flags; each may come before or after the sub-command.
GLOBAL_VALUES = (*(option.flag for option in GLOBAL_OPTIONS), "--config")
GLOBAL_FLAGS = ("--json", "--quiet", "-q", "--debug", "--version")


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so --json can shape the error."""

    def error(self, message):
        raise UsageError(f"{message} (see: {self.prog} --help)")


def hoist_globals(argv):
    """Move the global options (and their values) to the front, keeping every other token in order.

    `--` ends option processing: what follows stays where it is. A value option as the last
    token is left for argparse to complain about.
    """
    front, rest, tokens = [], [], list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            rest.extend(tokens[i:])
            break
        name = token.split("=", 1)[0]
        if token in GLOBAL_FLAGS:
            front.append(token)
        elif name in GLOBAL_VALUES and "=" in token:
            front.append(token)
        elif token in GLOBAL_VALUES and i + 1 < len(tokens):
            front.extend(tokens[i:i + 2])
            i += 1
        else:
            rest.append(token)
        i += 1
    return front + rest


def build(groups):
    """The parser: global options, then each module of `groups` adds its sub-commands with
    `add_parsers(sub)`; every leaf sets `handler` (and may set `database`: "open", "create"
    or "none")."""
    parser = Parser(prog="mission-control", description="Mission Control backup service. Global "
                    "options may come before or after the command.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    for option in GLOBAL_OPTIONS:
        add_option(parser, option)
    parser.add_argument("--config", metavar="FILE",
                        help="a TOML file of long option names (MC_CONFIG)")
    parser.add_argument("--json", action="store_true",
                        help="print results, and errors, as the API's JSON")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="print nothing but errors (no results, no progress)")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in groups:
        group.add_parsers(sub)
    return parser


def add_option(parser, option):
    """Add `option`'s flag to `parser`; its value lands on the `Config` attribute's name."""
    whole = isinstance(option.default, int) and not isinstance(option.default, bool)
    parser.add_argument(option.flag, dest=option.attr, type=int if whole else None,
                        help=f"{option.help} ({option.env}, default {option.default_text})")


def command_options(command):
    """The options of `config.OPTIONS` only `command` takes."""
    return tuple(option for option in OPTIONS if option.flag and option.command == command)


def version_text():
    return f"mission-control {__version__}"
