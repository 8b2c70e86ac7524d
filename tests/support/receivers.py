"""Alert receivers on loopback for tests: an HTTP ping receiver and an SMTP server (aiosmtpd)."""
import socket
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WAIT = 30  # seconds; generous, since the machine is shared


class PingReceiver:
    """An HTTP server in a thread that records every request as `(method, path, body)`.

    `status` is the answer, given after `delay` seconds; while `hold` is cleared, requests wait
    for it to be set (a monitor that hangs); `answered` counts the answers given. Use as a
    context manager.
    """

    def __init__(self, status=200, delay=0.0):
        self.status = status
        self.delay = delay
        self.requests = []
        self.answered = 0
        self.hold = threading.Event()
        self.hold.set()
        self._seen = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._seen:
                    receiver.requests.append((self.command, self.path, body.decode()))
                    receiver._seen.notify_all()
                receiver.hold.wait(WAIT)
                time.sleep(receiver.delay)  # a slow monitor
                with receiver._seen:
                    receiver.answered += 1
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count, timeout=WAIT):
        """The requests, once at least `count` have arrived. :raises AssertionError: too few."""
        with self._seen:
            if not self._seen.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {self.requests}")
            return list(self.requests)

    def paths(self):
        return [path for _, path, _ in self.requests]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MailReceiver:
    """aiosmtpd's SMTP server on a free loopback port; `messages` are the parsed mails received.

    With `login=(user, password)` it requires that login (over plain SMTP, as tests have no TLS).
    """

    def __init__(self, login=None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages = []
        self.envelopes = []
        self._seen = threading.Condition()
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                with receiver._seen:
                    receiver.envelopes.append(envelope)
                    receiver.messages.append(
                        message_from_bytes(envelope.original_content, policy=policy.default))
                    receiver._seen.notify_all()
                return "250 Message accepted"

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = login is not None and (auth_data.login.decode(), auth_data.password.decode()) \
                == tuple(login)
            return AuthResult(success=ok)

        self.port = free_port()
        kwargs = {"authenticator": authenticate, "auth_require_tls": False,
                  "auth_required": True} if login else {}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def wait_for(self, count, timeout=WAIT):
        """The mails, once at least `count` have arrived. :raises AssertionError: too few."""
        with self._seen:
            if not self._seen.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} mails, got {self.subjects()}")
            return list(self.messages)

    def subjects(self):
        return [m["Subject"] for m in self.messages]

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
