"""Run the service under waitress until SIGTERM or Ctrl-C, then shut down cleanly."""
import logging
import signal

import waitress

from .core import MissionControl
from .web import WebApp

log = logging.getLogger(__name__)


class _Stop(Exception):
    pass


def make_server(mc, host=None, port=None, threads=None):
    """A waitress server for `mc` (port 0 picks a free port: see `server.effective_port`)."""
    config = mc.config
    return waitress.create_server(
        WebApp(mc), host=host or config.host, port=config.port if port is None else port,
        threads=threads or config.threads, ident="mission-control", clear_untrusted_proxy_headers=True)


def serve(config, announce=print):
    """Open the service, create the first admin if needed, and serve until told to stop."""
    mc = MissionControl(config)
    mc.ensure_admin(announce)
    server = make_server(mc)
    announce(f"Mission Control backup service on http://{server.effective_host}:"
             f"{server.effective_port} (database {config.db_path})", )

    def stop(signum, frame):
        raise _Stop()

    # waitress swallows KeyboardInterrupt itself, so Ctrl-C gets the same handler as SIGTERM.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        mc.scheduler.start()
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
        mc.close()
    return 0
