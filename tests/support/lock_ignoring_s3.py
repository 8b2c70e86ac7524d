"""A loopback S3 endpoint that accepts Object Lock headers and keeps no lock: what a store (or a
gateway in front of one) that silently drops them looks like from the service.

It says its bucket has Object Lock on, keeps every PUT as a new version (with its SHA-256), and
answers HEAD and GET for them, without lock headers. Enough for an upload and its checks; use as
a context manager; `url` is its endpoint.
"""
import base64
import hashlib
import itertools
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LOCK_CONFIG = (b'<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration>'
               b"<ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>")
NOT_FOUND = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
             b"<Message>no such key</Message></Error>")


class LockIgnoringS3:
    def __init__(self):
        self.objects = {}  # (bucket, key) -> [(version id, body)], oldest first
        self.lock_headers_seen = 0
        numbers = itertools.count(1)
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _target(self):
                parts = urlsplit(self.path)
                bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
                return bucket, key, parse_qs(parts.query, keep_blank_values=True)

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _version(self, bucket, key, query):
                versions = store.objects.get((bucket, key), [])
                wanted = query.get("versionId", [None])[0]
                found = [v for v in versions if wanted in (None, v[0])]
                return found[-1] if found else None

            def _object_headers(self, version):
                digest = base64.b64encode(hashlib.sha256(version[1]).digest()).decode()
                return (("Last-Modified", formatdate(usegmt=True)), ("ETag", '"e"'),
                        ("x-amz-version-id", version[0]), ("x-amz-checksum-sha256", digest))

            def do_PUT(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bucket, key, _ = self._target()
                if self.headers.get("x-amz-object-lock-mode"):
                    store.lock_headers_seen += 1  # taken, and dropped
                version = f"v{next(numbers)}"
                store.objects.setdefault((bucket, key), []).append((version, body))
                self._send(200, headers=(("ETag", '"e"'), ("x-amz-version-id", version)))

            def do_HEAD(self):  # noqa: N802
                version = self._version(*self._target())
                if version is None:
                    return self._send(404)
                self.send_response(200)
                for name, value in self._object_headers(version):
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(version[1])))
                self.end_headers()

            def do_GET(self):  # noqa: N802
                bucket, key, query = self._target()
                if not key and "object-lock" in query:
                    return self._send(200, LOCK_CONFIG, (("Content-Type", "application/xml"),))
                version = self._version(bucket, key, query)
                if version is None:
                    return self._send(404, NOT_FOUND, (("Content-Type", "application/xml"),))
                self._send(200, version[1], self._object_headers(version))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
