"""Benchmark the HTTP side: listing 10,000 backups, req/s against a bare app, memory, start-up.

Run: `python bench/api_bench.py [--files 10000] [--size-mib 512] [--seconds 5]`. Starts real
waitress servers (`run.py`, and a bare Werkzeug app serving a constant for comparison) as
subprocesses, and prints a table of figures next to their goals. Ratios are measured in the same
run, so machine noise cancels. Uses `wrk` when installed (Debian: `apt-get install wrk`),
otherwise a keep-alive `http.client` load generator in separate processes.
"""
import argparse
import http.client
import json
import multiprocessing
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backup_bench import fill  # noqa: E402
from load import KEY, rss_mib, session_headers, start_server  # noqa: E402

BARE_APP = """
import sys, waitress
from werkzeug.wrappers import Request, Response
BODY = b'{"backups":[],"dir":"/x"}'
@Request.application
def app(request):
    return Response(BODY, content_type="application/json")
server = waitress.create_server(app, host="127.0.0.1", port=0, threads=int(sys.argv[1]))
print(f"http://127.0.0.1:{server.effective_port}", flush=True)
server.run()
"""


def start_bare(threads):
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    host, port = proc.stdout.readline().strip().removeprefix("http://").split(":")
    return proc, host, int(port)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def get_ms(host, port, path, headers, rounds):
    """Sequential GETs on one keep-alive connection: each request's milliseconds."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        out.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.status
    conn.close()
    return out


def _client(host, port, path, headers, seconds, out):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.request("GET", path, headers=headers)
        conn.getresponse().read()
        done += 1
    out.put(done)


def requests_per_second(host, port, path, headers, seconds, connections=16):
    """Throughput with `connections` keep-alive clients: wrk if installed, else Python."""
    if shutil.which("wrk"):
        cmd = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        out = subprocess.run(cmd + [f"http://{host}:{port}{path}"], capture_output=True,
                             text=True, check=True).stdout
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        assert not non2xx, out
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_client, args=(host, port, path, headers, seconds,
                                                           queue)) for _ in range(connections)]
    for p in procs:
        p.start()
    total = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def startup_seconds(data_dir, rounds):
    """Process start to the first 200 from /api/health, `rounds` times on the same data."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        proc, host, port = start_server(data_dir)
        while True:
            try:
                conn = http.client.HTTPConnection(host, port, timeout=5)
                conn.request("GET", "/api/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.002)
        times.append(time.perf_counter() - started)
        stop(proc)
    return times


def backup_memory(host, port, pid):
    """Baseline and peak RSS of the server while it makes one backup (sampled every 5 ms)."""
    baseline = rss_mib(pid)
    samples, result = [], {}

    def backup():
        conn = http.client.HTTPConnection(host, port, timeout=600)
        started = time.perf_counter()
        conn.request("POST", "/api/backup", headers={"x-api-key": KEY})
        response = conn.getresponse()
        result["body"] = json.loads(response.read())
        result["status"], result["seconds"] = response.status, time.perf_counter() - started

    worker = threading.Thread(target=backup)
    worker.start()
    while worker.is_alive():
        samples.append(rss_mib(pid))
        time.sleep(0.005)
    worker.join()
    assert result["status"] == 200, result
    return baseline, max(samples + [baseline]), result


def make_files(folder, count):
    """`count` small *.db files, as a folder that years of backups (and keepers) leave."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"keep-{i:05d}.db").write_bytes(b"x" * 64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads for both apps")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mc-apibench-", dir=args.workdir))
    rows = []
    try:
        # 1. Start-up to first answer (a fresh folder, then the same folder again).
        data = work / "data"
        fresh = startup_seconds(data, 1)[0]
        again = statistics.median(startup_seconds(data, 5))
        rows.append(("start-up to first answer, new database", f"{fresh * 1000:.0f} ms", ""))
        rows.append(("start-up to first answer, existing (median of 5)",
                     f"{again * 1000:.0f} ms", "report"))

        # 2. req/s: session-authenticated GET /api/backup vs a bare Werkzeug + waitress app,
        #    both with the same number of waitress threads (the default 8, and 2).
        for threads in dict.fromkeys((args.threads, 2)):
            proc, host, port = start_server(data, threads)
            try:
                cookie = session_headers(host, port)
                if threads == args.threads:
                    for _ in range(10):
                        conn = http.client.HTTPConnection(host, port)
                        conn.request("POST", "/api/backup", headers={"x-api-key": KEY})
                        conn.getresponse().read()
                ours = requests_per_second(host, port, "/api/backup", cookie, args.seconds)
                health = requests_per_second(host, port, "/api/health", {}, args.seconds)
            finally:
                stop(proc)
            bare_proc, bare_host, bare_port = start_bare(threads)
            try:
                bare = requests_per_second(bare_host, bare_port, "/", {}, args.seconds)
            finally:
                stop(bare_proc)
            rows.append((f"[{threads} threads] bare Werkzeug + waitress, constant",
                         f"{bare:.0f} req/s", ""))
            rows.append((f"[{threads} threads] GET /api/health (no auth, SELECT 1)",
                         f"{health:.0f} req/s", f"ratio {health / bare:.2f}"))
            rows.append((f"[{threads} threads] GET /api/backup, session, 10 backups",
                         f"{ours:.0f} req/s", ""))
            rows.append((f"[{threads} threads]   ratio to the bare app", f"{ours / bare:.2f}",
                         ">= 0.5"))

        proc, host, port = start_server(data, args.threads)
        try:
            # 3. GET /api/backup with many files in the folder.
            make_files(data / "backups", args.files)
            listed = get_ms(host, port, "/api/backup", {"x-api-key": KEY}, 30)
            rows.append((f"GET /api/backup, {args.files} files (median)",
                         f"{statistics.median(listed):.1f} ms", "< 50 ms"))
            rows.append((f"GET /api/backup, {args.files} files (p90)",
                         f"{sorted(listed)[int(len(listed) * 0.9)]:.1f} ms", ""))
            shutil.rmtree(data / "backups")
        finally:
            stop(proc)

        # 4. Server memory during a big backup.
        print(f"filling a {args.size_mib} MiB database ...", flush=True)
        fill(data / "mission-control.db", args.size_mib)
        proc, host, port = start_server(data, args.threads)
        try:
            get_ms(host, port, "/api/backup", {"x-api-key": KEY}, 5)  # warm up
            base, peak, result = backup_memory(host, port, proc.pid)
            rows.append((f"server RSS before a {args.size_mib} MiB backup", f"{base:.1f} MiB", ""))
            rows.append(("server RSS peak growth during it", f"{peak - base:.1f} MiB",
                         "<= 32 MiB"))
            rows.append(("  that backup took", f"{result['seconds']:.2f} s", ""))
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure'.ljust(width)}  {'measured':>12}  goal")
    for name, value, goal in rows:
        print(f"{name.ljust(width)}  {value:>12}  {goal}")


if __name__ == "__main__":
    main()
