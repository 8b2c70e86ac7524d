"""The `mission-control-reassemble` console script: rebuild any off-site copy from a folder, no service.

    mission-control-reassemble --identity KEY_FILE --from FOLDER NAME -o OUT

NAME is a copy's name as ``GET /api/offsite/<target>/backups`` lists it (``mc-backup-….db``).
FOLDER holds its full copy and, for an incremental copy, the packs and manifests of its chain.
Standard library plus the ``[offsite-crypt]`` extra only. Exit codes: 0 rebuilt, 1 failed (a
damaged or missing object, named), 2 usage (wrong arguments, unreadable key file, OUT exists).
"""
import argparse
import os
import sys

OK, FAILED, USAGE = 0, 1, 2


def _parser():
    parser = argparse.ArgumentParser(
        prog="mission-control-reassemble",
        description="Rebuild an off-site copy (full or incremental) from a folder holding its "
                    "full copy, packs and manifests, checking every page and the whole file.",
        epilog="exit codes: 0 rebuilt; 1 failed (the message names the object); 2 usage")
    parser.add_argument("--identity", metavar="KEY_FILE",
                        help="file holding the age secret key(s) (AGE-SECRET-KEY-1…); "
                             "needed when the copies are encrypted")
    parser.add_argument("--from", dest="folder", metavar="FOLDER", required=True,
                        help="folder holding the copy's objects")
    parser.add_argument("name", metavar="NAME", help="the copy's name (mc-backup-….db)")
    parser.add_argument("-o", "--output", metavar="OUT", required=True,
                        help="file to write the database to (must not exist)")
    return parser


def _usage(message):
    print(f"mission-control-reassemble: error: {message}", file=sys.stderr)
    return USAGE


def _identities(path):
    from .streams import parse_identities
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_identities(f.read(100000))
    except (OSError, UnicodeDecodeError):
        raise ValueError("cannot read the identity file") from None


def main(argv=None):
    """Run the script; return its exit status."""
    args = _parser().parse_args(argv)
    from .delta import DeltaError
    from .reassembly import rebuild
    from .streams import MissingExtra
    name = args.name
    for suffix in (".age", ".zst"):  # a full copy's remote name works too
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    if os.path.basename(name) != name or name.startswith(".") or not name:
        return _usage("NAME is a copy's name, not a path")
    if not os.path.isdir(args.folder):
        return _usage("--from is not a folder")
    if os.path.lexists(args.output):
        return _usage("OUT already exists: choose a new file")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        return _usage("the folder of OUT does not exist")
    try:
        identities = _identities(args.identity)
    except ValueError as exc:
        return _usage(str(exc))
    try:
        done = rebuild(args.folder, name, args.output, identities)
    except (DeltaError, MissingExtra) as exc:
        print(f"mission-control-reassemble: failed: {exc}", file=sys.stderr)
        return FAILED
    except OSError as exc:
        print(f"mission-control-reassemble: failed: {exc.strerror or exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("mission-control-reassemble: interrupted; nothing written", file=sys.stderr)
        return FAILED
    print(f"rebuilt {done.name}: {done.size} bytes, sha256 {done.sha256} "
          f"(from {len(done.objects)} object{'s' if len(done.objects) != 1 else ''})")
    return OK


def run():
    """Console-script entry point."""
    sys.exit(main())
