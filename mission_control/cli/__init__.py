"""The `mission-control` command: parse, configure, run one command, and turn every expected
failure into its exit code and one line (or the API's error JSON); `--debug` adds the traceback."""
import getpass
import logging
import os
import sys
import traceback
from dataclasses import dataclass, replace

from .. import config_file, logs
from ..actor import Actor
from ..config import OPTIONS
from ..core import MissionControl
from . import admin, alerts, backup, offsite, recover, users
from .failures import UsageError, describe
from .output import FAILED, OK, Output
from .parser import build, hoist_globals, version_text

GROUPS = (admin, backup, offsite, recover, users, alerts)


@dataclass
class Context:
    """What a command handler gets: its arguments, the effective configuration and the output."""

    args: object
    config: object
    sources: dict
    out: Output
    stdin: object
    actor: Actor

    def open(self, create=False, plugins=()):
        """The service on the configured database.

        :param create: make the database when there is none: only `user add` (and `serve`) do;
            any other command on a mistyped path is refused (DatabaseNotFound, exit 2) rather
            than run against an empty database made on the spot.
        :param plugins: plugin objects of this command (a `summary.BackupWatch`).
        """
        return MissionControl(self.config, create=create, plugins=plugins)


def cli_actor():
    """The CLI's `Actor`: `cli:<login name>`."""
    try:
        return Actor(f"cli:{getpass.getuser()}")
    except (KeyError, OSError):
        return Actor("cli")


def _flags_given(argv):
    """--json / --quiet / --debug as typed, read before parsing so a usage error is shaped too."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in head, "--quiet" in head or "-q" in head, "--debug" in head


def main(argv=None, out=None, stdin=None, err=None):
    """Entry point of the console script; returns the exit status (`output.EXIT_CODES`: 0 done,
    1 failed, 2 usage, 3 not found, 4 refused, 5 an off-site copy failed)."""
    argv = hoist_globals(sys.argv[1:] if argv is None else argv)
    as_json, quiet, debug = _flags_given(argv)
    output = Output(out, err, as_json=as_json, quiet=quiet)
    try:
        return _run(argv, output, stdin or sys.stdin)
    except SystemExit as exc:  # --help: argparse has printed it
        return exc.code if isinstance(exc.code, int) else OK
    except KeyboardInterrupt:
        output.error("interrupted")
        return FAILED
    except BrokenPipeError:
        # The reader went away (`... | head`): nothing more can be said on stdout, and Python
        # would print a traceback when it flushes stdout at exit, so point stdout at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return FAILED
    except Exception as exc:  # noqa: BLE001 - the one place failures become exit codes
        if debug:
            traceback.print_exc(file=output.err)
        described = describe(exc)
        if described is None:
            described = (FAILED, f"unexpected error: {type(exc).__name__}: {exc} (run again "
                                 "with --debug to see the traceback)", [])
        code, message, details = described
        output.error(message, details)
        return code


def log_level(args, sources, config):
    """WARNING for every command but `serve`, unless -v (INFO; -vv DEBUG) or a configured
    MC_LOG_LEVEL / log-level says otherwise; --quiet is WARNING whatever is configured."""
    if args.quiet:
        return "WARNING"
    if args.verbose:
        return "INFO" if args.verbose == 1 else "DEBUG"
    if args.command == "serve" or sources.get("log-level", "default") != "default":
        return config.log_level
    return "WARNING"


def _run(argv, output, stdin):
    args = build(GROUPS).parse_args(argv)
    if args.version:
        output.result({"version": version_text().split()[-1]}, version_text())
        return OK
    if args.command is None:
        raise UsageError("a command is required (see: mission-control --help)")
    # A sub-command's own flags (serve --port) are absent from the others' arguments.
    flags = {option.attr: getattr(args, option.attr, None) for option in OPTIONS if option.flag}
    warnings = []
    config, sources = config_file.load(args.config, warn=warnings.append, **flags)
    # A plugin's crash is logged with its traceback: the service's log keeps it, the CLI shows
    # it only under --debug (one line says what failed either way).
    output.log_handler = logs.configure(
        replace(config, log_level=log_level(args, sources, config)),
        tracebacks=args.debug or args.command == "serve")
    for warning in warnings:  # said once logging is set up, in the configured format
        logging.getLogger(config_file.__name__).warning("%s", warning)
    ctx = Context(args, config, sources, output, stdin, cli_actor())
    return args.handler(ctx) or OK
