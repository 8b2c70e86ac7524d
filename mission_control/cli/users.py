"""`mission-control user add|list|set-password|remove`: the people who may log in."""
import getpass

from ..users import ROLES, UserError
from .failures import UsageError


def add_parsers(sub):
    """Add the `user` command and its actions."""
    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    add = user.add_parser("add", help="create a user (makes the database if there is none)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    add.add_argument("--display-name")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of a prompt")
    add.set_defaults(handler=add_user, database="create")
    user.add_parser("list", help="list users").set_defaults(handler=list_users)
    setpw = user.add_parser("set-password", help="change a password (ends their sessions)")
    setpw.add_argument("name")
    setpw.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input instead of a prompt")
    setpw.set_defaults(handler=set_password)
    remove = user.add_parser("remove", help="delete a user")
    remove.add_argument("name")
    remove.set_defaults(handler=remove_user)


def read_password(args, stdin):
    """The new password: one line of standard input, or asked twice on the terminal.

    :raises UsageError: no terminal to ask on (use --password-stdin).
    :raises UserError: the two answers differ.
    """
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        raise UsageError("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UserError("passwords do not match")
    return first


def add_user(ctx):
    password = read_password(ctx.args, ctx.stdin)
    with ctx.open(create=True) as mc:
        user = mc.users.add(ctx.args.name, password, role=ctx.args.role,
                            display_name=ctx.args.display_name)
    ctx.out.result({"user": user.to_json()}, f"added {user.role} {user.username}")


def list_users(ctx):
    with ctx.open() as mc:
        found = mc.users.list()
    ctx.out.result({"users": [u.to_json() for u in found]},
                   [f"{u.username}\t{u.role}\t{u.display_name}" for u in found])


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
