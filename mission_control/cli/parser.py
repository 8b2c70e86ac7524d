"""The command line's grammar: global options accepted anywhere (and shown in every command's
help), sub-commands from each group's module with their examples and the exit codes, and
argparse's complaints turned into `UsageError` (exit 2, JSON under --json)."""
import argparse
import re

from .. import __version__
from ..config import OPTIONS
from .failures import UsageError
from .output import EXIT_CODES

#: The options of `config.OPTIONS` every command takes (the others belong to one sub-command).
GLOBAL_OPTIONS = tuple(option for option in OPTIONS if option.flag and option.command is None)
#: Global options that take a value, and flags; each may come before or after the sub-command.
GLOBAL_VALUES = (*(option.flag for option in GLOBAL_OPTIONS), "--config")
GLOBAL_FLAGS = ("--json", "--quiet", "-q", "--verbose", "-v", "-vv", "--debug", "--version")
#: How the level of the log lines on stderr is chosen (the global options' help says it).
LOG_HELP = ("log lines on stderr: WARNING and up by default (serve: MC_LOG_LEVEL, INFO); "
            "-v shows INFO (-vv DEBUG), as does setting MC_LOG_LEVEL or log-level in --config")
ACTIONS_HELP = "what to do (each has its own --help)"
_INDENTED = re.compile(r"\n  ")


class Formatter(argparse.HelpFormatter):
    """argparse's help layout, but a paragraph of indented lines (examples, exit codes) is kept
    as written while other paragraphs are wrapped to the terminal."""

    def _fill_text(self, text, width, indent):
        return "\n\n".join(paragraph if _INDENTED.search(paragraph)
                           else super(Formatter, self)._fill_text(paragraph, width, indent)
                           for paragraph in text.split("\n\n"))


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so --json can shape the error;
    every command's help ends with its `examples` and the exit codes."""

    def __init__(self, *args, examples=(), **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        lines = "".join(f"\n  {example}" for example in examples)
        kwargs.setdefault("epilog", (f"examples:{lines}\n\n" if examples else "") + EXIT_CODES)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see: {self.prog} --help)")


def command(sub, name, summary, *, description=None, examples=(), **kwargs):
    """Add sub-command `name`: `summary` in its group's list, `description` (default: the
    summary) atop its own help, then its `examples` (each a line: a command, maybe a comment)."""
    text = description or summary
    return sub.add_parser(name, help=summary, description=text[:1].upper() + text[1:],
                          examples=examples, **kwargs)


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
                    "options may come before or after the command.", examples=(
                        "mission-control backup create          # a backup now, then its "
                        "off-site copies",
                        "mission-control backup list",
                        "mission-control backup create --help   # any command's own help"))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    add_globals(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser,
                                help=ACTIONS_HELP)
    for group in groups:
        group.add_parsers(sub)
    for command_parser in _sub_parsers(parser):
        group = command_parser.add_argument_group("global options (before or after the command)")
        add_globals(group, default=argparse.SUPPRESS)
    return parser


def add_globals(parser, **defaults):
    """The options every command takes. In a sub-command's parser they have `default=SUPPRESS`:
    there they are only shown (`hoist_globals` has moved them to the front, where they are read),
    and must not overwrite what the front read."""
    for option in GLOBAL_OPTIONS:
        add_option(parser, option, **defaults)
    parser.add_argument("--config", metavar="FILE",
                        help="a TOML file of long option names (MC_CONFIG)", **defaults)
    parser.add_argument("--json", action="store_true",
                        help="print results, and errors, as the API's JSON", **defaults)
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="print nothing but errors (no results, no progress)", **defaults)
    parser.add_argument("--verbose", "-v", action="count", help=LOG_HELP,
                        **{"default": 0, **defaults})
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error", **defaults)


def _sub_parsers(parser):
    """Every parser below `parser` (commands, then their actions), depth first."""
    for action in parser._actions:  # argparse keeps no public list of its sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield child
                yield from _sub_parsers(child)


def add_option(parser, option, **defaults):
    """Add `option`'s flag to `parser`; its value lands on the `Config` attribute's name."""
    whole = isinstance(option.default, int) and not isinstance(option.default, bool)
    parser.add_argument(option.flag, dest=option.attr, type=int if whole else None,
                        help=f"{option.help} ({option.env}, default {option.default_text})",
                        **defaults)


def command_options(command):
    """The options of `config.OPTIONS` only `command` takes."""
    return tuple(option for option in OPTIONS if option.flag and option.command == command)


def version_text():
    return f"mission-control {__version__}"
