"""`mission-control alerts test`: a test ping and a test mail through each configured channel."""
from .. import alert_channels
from .output import FAILED
from .parser import ACTIONS_HELP, command

NONE_CONFIGURED = ("no alert channel is configured: set healthchecks.url, or email.smtp_host "
                   "and email.to (mission-control settings set KEY=VALUE)")


def add_parsers(sub):
    """Add the `alerts` command and its one action."""
    actions = command(sub, "alerts", "test the alert channels (pings, mail)",
                      examples=("mission-control alerts test",)) \
        .add_subparsers(dest="action", metavar="ACTION", required=True, help=ACTIONS_HELP)
    test = command(actions, "test", "send a test ping and a test mail through each configured "
                                    "channel now and say what each answered (exit 1 when one "
                                    "failed, or none is configured)",
                   examples=("mission-control alerts test", "mission-control alerts test --json"))
    test.set_defaults(handler=test_)


def test_(ctx):
    with ctx.open() as mc:
        results = alert_channels.test_all(mc, ctx.actor)
    ok = bool(results) and all(r["ok"] for r in results)
    lines = [f"{r['channel']}\t{'ok' if r['ok'] else 'FAILED'}\t{r['answer']}" for r in results]
    if not results:
        lines.append(NONE_CONFIGURED)
    ctx.out.result({"ok": ok, "channels": results}, lines)
    return None if ok else FAILED
