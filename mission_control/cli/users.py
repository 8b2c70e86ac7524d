"""`mission-control user add|list|set-password|remove`: the people who may log in."""
import getpass

from ..passwords import check_strength
from ..users import ROLES, UserError
from .answer import answer_line
from .failures import UsageError
from .parser import ACTIONS_HELP, command


def add_parsers(sub):
    """Add the `user` command and its actions."""
    user = command(sub, "user", "manage users",
                   description="the people who may log in to the page and the API (roles, "
                   "lowest first: " + ", ".join(ROLES) + ")",
                   examples=("mission-control user add ann --role admin",
                             "mission-control user list")).add_subparsers(
        dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    add = command(user, "add", "create a user (makes the database if there is none)",
                  examples=("mission-control user add ann --role admin",
                            "echo \"$PASSWORD\" | mission-control user add bob --password-stdin"))
    add.add_argument("name", help="the login name")
    add.add_argument("--role", choices=ROLES, default="viewer",
                     help="what the user may do (default: viewer)")
    add.add_argument("--display-name", help="the name shown on the page (default: the login)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of a prompt")
    add.set_defaults(handler=add_user, database="create")
    command(user, "list", "list users", examples=("mission-control user list --json",)) \
        .set_defaults(handler=list_users)
    setpw = command(user, "set-password", "change a password (ends their sessions)",
                    examples=("mission-control user set-password ann",))
    setpw.add_argument("name", help="the login name")
    setpw.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input instead of a prompt")
    setpw.set_defaults(handler=set_password)
    remove = command(user, "remove", "delete a user", examples=("mission-control user remove bob",))
    remove.add_argument("name", help="the login name")
    remove.set_defaults(handler=remove_user)


def read_password(args, stdin):
    """The new password: one line of standard input, or asked twice on the terminal.

    :raises UsageError: no terminal to ask on (use --password-stdin).
    :raises UserError: the two answers differ.
    """
    if args.password_stdin:
        return answer_line(stdin, grace=None).rstrip("\r\n")
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        raise UsageError("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UserError("passwords do not match")
    return first


def add_user(ctx):
    password = read_password(ctx.args, ctx.stdin)
    problem = check_strength(password)
    if problem:  # refused before the database is made: a refused `user add` leaves nothing
        raise UserError(problem)
    db_path = ctx.config.db_path
    if not db_path.exists() or db_path.stat().st_size == 0:
        # Logged at INFO, which the CLI does not show by default: a mistyped path shows here.
        ctx.out.notice(f"creating a new Mission Control database at {db_path.absolute()}")
    with ctx.open(create=True) as mc:
        user = mc.users.add(ctx.args.name, password, role=ctx.args.role,
                            display_name=ctx.args.display_name)
    ctx.out.result({"user": user.to_json()}, f"added {user.role} {user.username}")


def list_users(ctx):
    with ctx.open() as mc:
        found = mc.users.list()
    ctx.out.result({"users": [u.to_json() for u in found]},
                   [*(f"{u.username}\t{u.role}\t{u.display_name}" for u in found),
                    f"{len(found)} user{'' if len(found) == 1 else 's'}"])


def set_password(ctx):
    password = read_password(ctx.args, ctx.stdin)
    with ctx.open() as mc:
        mc.users.set_password(ctx.args.name, password)
    ctx.out.result({"success": True, "username": ctx.args.name},
                   f"password changed for {ctx.args.name}; their sessions were ended")


def remove_user(ctx):
    with ctx.open() as mc:
        mc.users.remove(ctx.args.name)
    ctx.out.result({"success": True, "username": ctx.args.name}, f"removed user {ctx.args.name}")
