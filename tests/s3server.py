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
