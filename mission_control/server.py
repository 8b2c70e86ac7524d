"""Run the service under waitress until SIGTERM or Ctrl-C, then shut down cleanly."""
import logging
import signal

import waitress
from waitress.wasyncore import ExitNow

from .actor import Actor
from .core import MissionControl
from .web import WebApp

log = logging.getLogger(__name__)

SERVER = Actor("server")


class _Stop(ExitNow):
    """Raised by the signal handler. An `ExitNow`, because waitress turns any other exception
    raised while a connection's handler runs into a log line and carries on: a SIGTERM that came
    while it was reading or closing a connection was lost."""


def make_server(mc, host=None, port=None, threads=None):
    """A waitress server for `mc` (port 0 picks a free port: see `server.effective_port`).

    Proxy headers reach the app untouched: it alone decides whom to believe (`MC_TRUSTED_PROXIES`,
    see `web.http.client_ip`), as waitress can trust only one proxy address. A connection that
    sends nothing for `idle_timeout` seconds while no request of its own is running is closed,
    so half-sent requests cannot hold every slot of `connection_limit`.
    """
    config = mc.config
    return waitress.create_server(
        WebApp(mc), host=host or config.host, port=config.port if port is None else port,
        threads=threads or config.threads, ident="mission-control",
        clear_untrusted_proxy_headers=False,
        connection_limit=config.connection_limit, channel_timeout=config.idle_timeout,
        # Idle connections are looked for this often, so one is closed within ~1.3 timeouts.
        cleanup_interval=max(1, min(30, config.idle_timeout // 3)),
        # select() fails on descriptors above 1023; a high connection limit needs poll().
        asyncore_use_poll=True)


def serve(config, announce=print, *, init=False):
    """Open the service, create the first admin if needed, and serve until told to stop.

    :param init: adopt an existing SQLite database that is not Mission Control's (`--init`).
    """
    mc = MissionControl(config, create=True, init=init)
    log.info("Mission Control database: %s", config.db_path)  # absolute (Config makes it so)
    mc.ensure_admin(announce)
    mc.offsite.signer.private_key(announce)  # made on first start; shown once, like the password
    server = make_server(mc)
    state = {"serving": False, "stop": False}

    def stop(signum, frame):
        # Before the main loop, only note it: raised inside start-up (a plugin's serve_start,
        # which is isolated) it would be swallowed and the service would run on.
        state["stop"] = True
        if state["serving"]:
            raise _Stop()

    # waitress swallows KeyboardInterrupt itself, so Ctrl-C gets the same handler as SIGTERM.
    # Installed before the banner: whoever waits for it may send SIGTERM at once.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    announce(f"Mission Control backup service on http://{server.effective_host}:"
             f"{server.effective_port} (database {config.db_path})", )
    try:
        mc.scheduler.start()
        mc.hooks.serve_start(SERVER)
        state["serving"] = True
        if state["stop"]:  # a signal came during start-up
            raise _Stop()
        server.run()
    except (_Stop, KeyboardInterrupt):
        log.info("shutting down")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # The main loop has stopped, so nothing new is accepted. The scheduler finishes a backup
        # it is making, and running requests (a backup, say) finish too, before the database
        # closes. The server closes last: a worker that finishes still pulls its trigger.
        if not mc.scheduler.stop(timeout=60):
            log.error("the scheduler did not stop within 60 s")
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=60)
        server.close()
        mc.hooks.serve_stop(SERVER)
        mc.close()
    return 0
