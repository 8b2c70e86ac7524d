"""A real S3-protocol server (moto's standalone server) in a subprocess on a free loopback port."""
import re
import subprocess
import sys
import threading
import time

ACCESS_KEY, SECRET_KEY = "AKIDMCTEST", "mc-test-secret"


class S3Server:
    """`python -m moto.server` in a subprocess; `url` is its endpoint."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = None
        deadline = time.monotonic() + 30
        for line in self.proc.stdout:
            found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
            if found:
                self.url = found.group(1)
                break
            if time.monotonic() > deadline:
                break
        if self.url is None:
            self.stop()
            raise RuntimeError("moto server did not start")
        # Keep reading its request log, or the pipe fills and the server blocks.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class FailingS3:
    """An S3 endpoint on loopback that refuses every request with `status` and an S3 error
    document whose `<Message>` is `message`: what a hostile or broken remote side may send.
    Use as a context manager; `url` is its endpoint."""

    def __init__(self, message, status=403, code="AccessDenied"):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from xml.sax.saxutils import escape

        # A carriage return in XML text is read back as a line feed unless written as a reference.
        text = escape(message).replace("\r", "&#13;")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{text}</Message></Error>").encode()

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
