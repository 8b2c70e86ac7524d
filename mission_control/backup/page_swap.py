"""The restore's swap that writes only the pages that differ: a child process with `sqlite_dbpage`.

Run as ``python -I page_swap.py LIVE BUSY_MS PARENT_PID`` as a restore starts (`Child.start`).
LIVE is the live database, in WAL mode, which other connections and processes keep reading and
writing. The child makes LIVE's content that of PREPARED, the restore's verified, prepared private
copy (a rollback-journal file nobody else writes), in one ordinary write transaction that writes
only the pages that differ, through SQLite's `sqlite_dbpage` table (in the `sqlean.py` build of
SQLite: the system's lacks it). Every other connection sees either the old or the new data, as
with the backup API, but the write lock is held for the differing pages only, not for a copy of
every page; and the restore's safety copy is brought up to exactly the data the swap replaces.

0. At once: read the WAL-index header (the `-shm` file: the WAL's generation, its salts, and its
   last committed frame, m0), then begin snapshot R on the `guard` connection and print
   ``{"ready": true}``. The restore makes its safety copy only after that, so the copy's snapshot
   is R or later. R is held until step 2 has the lock.
1. Told ``{"prepared": PATH, "safety": PATH}`` on stdin (an empty input: no swap, exit 0), and
   without any lock: a read transaction on LIVE (snapshot S) compares every page of S with
   PREPARED (in SQLite, a join of the two `sqlite_dbpage` tables): the pages that differ, D.
2. Under the write lock (`BEGIN IMMEDIATE`): every page changed since R was written in a frame of
   the WAL's current generation (after m0 when the generation is still m0's; see
   `PageSwap._changed_since_snapshot`), C. The live version of each page of C (and the live size)
   is written into the safety copy, which is fsynced: it is now the data the swap replaces. Then
   the pages of C are compared again, D's others differ as they did, and those that differ are
   written; page 1 is always written with them, as SQLite's backup API writes it (the WAL format
   bytes, the schema cookie one past the live one so that every connection reloads the schema);
   a longer live file is truncated. Nothing differs: nothing is written. When the WAL or its
   index cannot be read, every page is compared again under the lock (slower, never wrong) and
   the safety copy is left as it was made.

Why a child: two copies of SQLite in one process break each other's POSIX locks on a file both
open (closing any descriptor of a file drops every lock the process holds on it), and the server
holds the live database open through Python's `sqlite3`. The child reads the `-shm` and `-wal`
files beside its own SQLite and closes them only after its connections (`OpenFiles`). It dies
with its parent (`PR_SET_PDEATHSIG`): an uncommitted swap is then rolled back by SQLite.

Output, one JSON object a line on stdout: the ready line, ``{"cookie": N}`` just before the commit
(so that a parent that lost the child can tell whether it committed), then the result:
``{"pages", "written", "compared_under_lock", "full_compare", "lock_ms", "truncated_from",
"safety_patched"}``. Exit 3 with a reason on stderr: this swap does not apply (no `sqlean`,
another page size, auto-vacuum): nothing was touched, the parent uses the backup API. Exit 4: the
safety copy could not be brought up to date, nothing else was written. Exit 1: it failed, nothing
was written (one line on stderr, no traceback).
"""
import heapq
import importlib.util
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from array import array

WAL_HEADER, FRAME_HEADER = 32, 24
#: One copy of the WAL-index header at the start of the `-shm` file (SQLite keeps two).
SHM_HEADER = 48
HEADER_READS = 5
#: The bytes of page 1 that differ between two copies of the same data: the WAL format bytes
#: (18-19), the change counter (24-27), the schema cookie (40-43), version-valid-for and the
#: writing library's version (92-99).
VOLATILE_HEADER = ((18, 20), (24, 28), (40, 44), (92, 100))
DIFFERING = ("SELECT s.pgno FROM sqlite_dbpage('src') AS s"
             " LEFT JOIN sqlite_dbpage('main') AS m ON m.pgno = s.pgno"
             " WHERE m.data IS NOT s.data ORDER BY s.pgno")
MMAP_SIZE = 1 << 40

log = logging.getLogger(__name__)


#: Seconds the child may take: a start, and one read of both files at a slow disk's pace.
BASE_TIMEOUT = 60
BYTES_PER_SECOND = 20 * 2**20
#: Seconds a started child has to say it is ready, or to end when told no swap is coming.
READY_TIMEOUT = 30
READY = '{"ready": true}'
NOT_APPLICABLE, SAFETY_BROKEN = 3, 4


class NotApplicable(Exception):
    """This swap does not apply to these files; nothing was touched (exit 3)."""


class SafetyCopyBroken(Exception):
    """The safety copy could not be brought up to the live data; the live database is unchanged,
    and the safety copy may be half written (remove it)."""


def wal_index_header(shm):
    """The WAL-index header's `(salts, last committed frame)` from the open `-shm` file `shm`, or
    None when it has no consistent header (SQLite writes its two copies in turn: equal copies are
    whole)."""
    for _ in range(HEADER_READS):
        data = os.pread(shm, 2 * SHM_HEADER, 0)
        if len(data) < 2 * SHM_HEADER:
            return None
        first = data[:SHM_HEADER]
        if first == data[SHM_HEADER:] and first[12] == 1:  # isInit
            return bytes(first[32:40]), struct.unpack_from("=I", first, 16)[0]
        time.sleep(0.001)
    return None


def frames_since(wal, salts, first, last, page_size):
    """The pages written by frames `first` to `last` of the open WAL file `wal`, and the smallest
    database size a commit among them left; None when a frame is not of the generation `salts`.

    :return: `(set of page numbers, smallest size in pages or None when no commit)`.
    """
    pages, smallest = set(), None
    if first > last:
        return pages, smallest
    if os.pread(wal, WAL_HEADER, 0)[16:24] != salts:
        return None
    frame = FRAME_HEADER + page_size
    for i in range(first, last + 1):
        head = os.pread(wal, FRAME_HEADER, WAL_HEADER + (i - 1) * frame)
        if len(head) < FRAME_HEADER or head[8:16] != salts:
            return None
        page, commit = struct.unpack_from(">2I", head)
        pages.add(page)
        if commit:
            smallest = commit if smallest is None else min(smallest, commit)
    return pages, smallest


class OpenFiles:
    """Descriptors of the live database's `-shm` and `-wal` files, read beside SQLite in this
    process, and closed only after SQLite's connections: closing a descriptor of a file drops
    every POSIX lock this process holds on it, the write lock SQLite keeps in the `-shm` file
    included. A file that was replaced since it was opened (unlinked by the last connection to
    close, then made again) is not read."""

    def __init__(self):
        self._fds = {}

    def get(self, path):
        """An open descriptor of `path` while it is still the file first opened, or None."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        held = os.fstat(fd)
        return fd if (held.st_dev, held.st_ino) == (st.st_dev, st.st_ino) else None

    def close(self):
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _normalised_first_page(data):
    data = bytearray(data)
    for start, end in VOLATILE_HEADER:
        data[start:end] = bytes(end - start)
    return bytes(data)


def first_page_to_write(prepared_first, live_cookie):
    """PREPARED's page 1 as the live database must have it: WAL format bytes (2, 2) and the
    schema cookie one past the live one, so that every connection reloads its schema (as SQLite's
    backup API does)."""
    data = bytearray(prepared_first)
    data[18:20] = b"\x02\x02"
    data[40:44] = struct.pack(">I", (live_cookie + 1) & 0xFFFFFFFF)
    return bytes(data)


class PageSwap:
    """The swap's connections to LIVE: `guard` holds snapshot R from the start, before the safety
    copy's own snapshot (so every page changed since is in a frame of the WAL's current
    generation, `_changed_since_snapshot`); `reader` compares, `writer` writes."""

    def __init__(self, sqlite, live, busy_ms):
        self.live, self.files = live, OpenFiles()
        live_uri = f"file:{urllib.parse.quote(os.path.abspath(live))}?mode=rw"  # never created
        self.guard, self.reader, self.writer = (self._connect(sqlite, live_uri, busy_ms)
                                                for _ in range(3))
        if self._one(self.guard, "PRAGMA main.journal_mode") != "wal":
            raise NotApplicable("the live database is not in WAL mode")
        if self._one(self.guard, "PRAGMA main.auto_vacuum") != 0:
            raise NotApplicable("auto-vacuum is on in the live database")
        self.page_size = self._one(self.guard, "PRAGMA main.page_size")
        self.before = self.wal_position()  # m0: read before R begins, so at most R's
        self.guard.execute("BEGIN")
        self.guard_pages = self._one(self.guard, "PRAGMA main.page_count")  # R begins here
        self.fd = self.src_pages = None

    def attach(self, prepared):
        """Attach the prepared copy, PREPARED, to the reader and the writer.
        :raises NotApplicable: another page size, or auto-vacuum on."""
        if not os.path.isfile(prepared) or os.path.getsize(prepared) == 0:
            raise FileNotFoundError("the prepared copy is missing or empty")
        uri = f"file:{urllib.parse.quote(os.path.abspath(prepared))}?mode=rw"
        for conn in (self.reader, self.writer):
            conn.execute("ATTACH DATABASE ? AS src", (uri,))  # never created
            conn.execute(f"PRAGMA src.mmap_size={MMAP_SIZE}")
        if self._one(self.reader, "PRAGMA src.page_size") != self.page_size:
            raise NotApplicable("the prepared copy's page size is not the live one's")
        if self._one(self.reader, "PRAGMA src.auto_vacuum") != 0:
            raise NotApplicable("auto-vacuum is on in the prepared copy")
        self.src_pages = self._one(self.reader, "PRAGMA src.page_count")
        if not self.src_pages:
            raise ValueError("the prepared copy has no pages")
        self.fd = self.files.get(prepared)

    @staticmethod
    def _connect(sqlite, path, busy_ms):
        conn = sqlite.connect(path, isolation_level=None, check_same_thread=False, uri=True)
        conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
        conn.execute("PRAGMA synchronous=FULL")  # the swap's commit is durable
        return conn

    @staticmethod
    def _one(conn, sql, *args):
        row = conn.execute(sql, args).fetchone()
        return row[0] if row else None

    def close(self):
        for conn in (self.guard, self.reader, self.writer):
            conn.close()
        self.files.close()  # last: see `OpenFiles`

    def source_page(self, pgno):
        data = os.pread(self.fd, self.page_size, (pgno - 1) * self.page_size)
        if len(data) != self.page_size:
            raise OSError(f"the prepared copy ends before its page {pgno}")
        return data

    def wal_position(self):
        """The WAL's generation and last committed frame now, or None (no WAL index to read)."""
        shm = self.files.get(f"{self.live}-shm")
        return None if shm is None else wal_index_header(shm)

    def run(self, announce, *, safety=None, between=None):
        """Both steps; `announce(cookie)` is called just before the commit, `between()` (when
        given) between the comparison and the lock. `safety`: the path of the safety copy made
        since R began, brought up to the live data as the lock found it (`_patch_safety_copy`).
        :return: the result."""
        self.reader.execute("BEGIN")
        self._one(self.reader, "PRAGMA main.page_count")  # S begins here
        differing = array("I", (row[0] for row in self.reader.execute(DIFFERING)))
        self.reader.execute("COMMIT")
        if between is not None:
            between()
        self.writer.execute("BEGIN IMMEDIATE")
        locked = time.perf_counter()
        try:
            result = self._under_lock(differing, announce, safety)
        except BaseException:
            if self.writer.in_transaction:
                self.writer.execute("ROLLBACK")
            raise
        finally:
            if self.guard.in_transaction:
                self.guard.execute("COMMIT")
        result["lock_ms"] = round((time.perf_counter() - locked) * 1000, 1)
        return result

    def _changed_since_snapshot(self, live_pages):
        """The pages that may differ from R now, or None: compare them all.

        Every frame committed after R is a frame of the WAL's current generation: while the
        guard holds R, SQLite restarts the WAL at most once, and only before any frame follows
        R in the old one (a reader on a frame blocks restarts; a reader of the database file
        alone blocks the checkpoint a second restart needs). When the generation is the one
        `before` saw, only its frames after `before`'s last are new.
        """
        shm, wal = (self.files.get(f"{self.live}-{end}") for end in ("shm", "wal"))
        now = None if shm is None else wal_index_header(shm)  # stable: we hold the write lock
        if now is None:
            return None
        top = max(self.src_pages, live_pages)
        if now[1] == 0:  # no frame in the WAL: nothing was committed since R
            return set(range(min(self.guard_pages, live_pages) + 1, top + 1))
        if wal is None:
            return None
        before = self.before
        same = before is not None and now[0] == before[0] and now[1] >= before[1]
        found = frames_since(wal, now[0], before[1] + 1 if same else 1, now[1], self.page_size)
        if found is None:
            return None
        pages, smallest = found
        floor = min(self.guard_pages, live_pages, smallest or self.guard_pages)
        return pages | set(range(floor + 1, top + 1))

    def _differs(self, pgno):
        """Whether page `pgno` of the live database (as this write transaction sees it) differs
        from the prepared copy's; page 1 apart from the bytes that differ between two copies of
        the same data (`VOLATILE_HEADER`)."""
        live = self._one(self.writer, "SELECT data FROM sqlite_dbpage WHERE pgno = ?", pgno)
        data = self.source_page(pgno)
        if pgno == 1:
            return live is None or _normalised_first_page(live) != _normalised_first_page(data)
        return live != data

    def _patch_safety_copy(self, path, changed, live_pages):
        """Make the safety copy (a rollback-journal file of the live data at its own, later
        snapshot) the live data as this transaction finds it, before anything is written: the
        live version of every page changed since R, and the live size. Then fsync it: once the
        swap commits, the safety copy on the disk is exactly the data the swap replaced.

        :return: the pages written into it (0: it was the live data already, and is untouched).
        """
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # the parent made it; never created here
        try:
            written = 0
            size = live_pages * self.page_size
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
                written += 1
            for pgno in sorted(p for p in changed | {1} if p <= live_pages):
                data = self._one(self.writer, "SELECT data FROM sqlite_dbpage WHERE pgno = ?",
                                 pgno)
                if pgno == 1:  # file format versions: 1, a rollback-journal file
                    data = data[:18] + b"\x01\x01" + data[20:]
                offset = (pgno - 1) * self.page_size
                if os.pread(fd, self.page_size, offset) != data:
                    os.pwrite(fd, data, offset)
                    written += 1
            if written:
                os.fsync(fd)
        finally:
            os.close(fd)
        return written

    def _under_lock(self, differing, announce, safety):
        """Step 2. `differing`: the pages that differed in S, ascending (an `array`: at 10 GiB
        every page may differ, and memory stays at 4 bytes a page)."""
        live_pages = self._one(self.writer, "PRAGMA main.page_count")
        changed = self._changed_since_snapshot(live_pages)
        full = changed is None
        result = {"pages": self.src_pages, "written": 0, "full_compare": full,
                  "compared_under_lock": None, "truncated_from": None, "safety_patched": None}
        if full:  # in SQLite, as in step 1, but on the locked, newest data
            differing = array("I", (row[0] for row in self.writer.execute(DIFFERING)))
            changed = set()
        elif safety is not None:
            try:
                result["safety_patched"] = self._patch_safety_copy(safety, changed, live_pages)
            except Exception as exc:  # noqa: BLE001 - told apart by the parent (exit 4)
                raise SafetyCopyBroken("the safety copy could not be brought up to date: "
                                       f"{_reason(exc)}") from exc
        # Pages changed since R are compared again; the others differ as they did in S.
        recheck = sorted(p for p in changed | {1} if p <= self.src_pages)
        again = [p for p in recheck if self._differs(p)]
        truncate = live_pages > self.src_pages
        result["compared_under_lock"] = self.src_pages if full else len(recheck)
        result["truncated_from"] = live_pages if truncate else None
        def known():  # pages that differed in S and were not written since
            return (p for p in differing if p != 1 and p not in changed)
        if not again and not truncate and next(known(), None) is None:
            self.writer.execute("ROLLBACK")
            return result
        cookie = (self._one(self.writer, "PRAGMA main.schema_version") + 1) & 0xFFFFFFFF
        if truncate:
            self.writer.execute("INSERT INTO sqlite_dbpage (pgno, data) VALUES (?, NULL)",
                                (self.src_pages + 1,))
        pages = heapq.merge(known(), (p for p in again if p != 1))
        written = [1]  # page 1, and each page as it goes to SQLite, one at a time

        def rows():
            for pgno in pages:
                written[0] += 1
                yield pgno, self.source_page(pgno)
        self.writer.executemany("INSERT INTO sqlite_dbpage (pgno, data) VALUES (?, ?)", rows())
        self.writer.execute("INSERT INTO sqlite_dbpage (pgno, data) VALUES (1, ?)",
                            (first_page_to_write(self.source_page(1), cookie - 1),))
        announce(cookie)
        self.writer.execute("COMMIT")
        result["written"] = written[0]
        return result


def available():
    """Whether this swap can run here: `sqlean.py` (a SQLite with `sqlite_dbpage`) is installed."""
    return importlib.util.find_spec("sqlean") is not None


class Child:
    """The swap's child process: started as a restore starts (its snapshot R must come before
    the safety copy's), told to swap once the prepared copy and the safety copy are ready
    (`swap`), or ended without a swap (`close`)."""

    def __init__(self, proc):
        self._proc = proc
        self._lock = threading.Lock()
        self._ready = None
        #: Why the swap fell back to the backup API when the child failed (not when the swap
        #: merely does not apply), for the audit and the verdict; None otherwise.
        self.failure = None

    @classmethod
    def start(cls, live, *, busy_ms):
        """:return: a `Child`, or None when no process could be started (logged)."""
        command = [sys.executable, "-I", os.path.abspath(__file__), str(live), str(int(busy_ms)),
                   str(os.getpid())]
        try:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            log.warning("page swap not used (no child process: %s); swapping with the backup API",
                        exc)
            return None
        return cls(proc)

    def wait_ready(self):
        """Wait until the child holds its snapshot R (the safety copy must begin after it).

        :return: whether it does; a child that never says so is stopped, and the restore swaps
            with the backup API.
        """
        with self._lock:
            if self._ready is None:
                try:
                    ready, _, _ = select.select([self._proc.stdout], [], [], READY_TIMEOUT)
                    self._ready = bool(ready) and self._proc.stdout.readline().strip() == READY
                except (OSError, ValueError):  # its output is closed: it was ended
                    self._ready = False
                if not self._ready:
                    self._proc.kill()
            return self._ready

    def swap(self, prepared, safety, *, committed):
        """Swap `prepared` in, bringing `safety` (a path, or None) up to the live data first.

        :param committed: `committed(cookie)` says whether the live database's schema cookie is
            `cookie`: asked only when the child announced its commit but gave no result (it was
            killed, or its output failed), to tell whether the commit happened.
        :return: the child's result (a dict; `lock_ms` the time it held the write lock), or None
            when it did not change the live database and the caller should swap another way: the
            swap does not apply (auto-vacuum, say) or failed before its commit (logged).
        :raises SafetyCopyBroken: the safety copy could not be brought up to date (nothing else
            was changed).
        """
        timeout = BASE_TIMEOUT + os.path.getsize(prepared) / BYTES_PER_SECOND
        order = json.dumps({"prepared": str(prepared),
                            "safety": None if safety is None else str(safety)}) + "\n"
        if self.wait_ready():
            try:
                out, err = self._proc.communicate(order, timeout=timeout)
            except subprocess.TimeoutExpired:  # an open transaction rolls back as it dies
                self._proc.kill()
                out, err = self._proc.communicate()
                err = f"no answer in {timeout:.0f} s"
        else:  # it never got ready: gone (not applicable, no sqlean) or stuck
            self._proc.kill()
            out, err = self._proc.communicate()
        code = self._proc.returncode
        said = _lines_said(out)
        result = next((each for each in said if "pages" in each), None)
        if code == 0 and result is not None:
            return result
        reason = (err.strip().splitlines() or [f"exit {code}"])[-1]
        cookie = next((each["cookie"] for each in said if "cookie" in each), None)
        if cookie is not None and committed(cookie):
            log.warning("the page swap committed, but its child ended without a result (%s)",
                        reason)
            return {"pages": None, "written": None, "lock_ms": None, "unreported": True}
        if code == SAFETY_BROKEN:
            raise SafetyCopyBroken(reason)
        if code != NOT_APPLICABLE:
            self.failure = reason
        log.log(logging.INFO if code == NOT_APPLICABLE else logging.WARNING,
                "page swap not used (%s); swapping with the backup API", reason)
        return None

    def close(self):
        """End the child if it is still waiting (the restore ended before its swap): it reads
        the end of its input and exits, ending its snapshot."""
        if self._proc.poll() is None:
            try:
                self._proc.communicate(timeout=READY_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()


def _reason(exc):
    """One line for `exc`, without a path: it reaches the audit and the verdict."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _lines_said(out):
    """The JSON objects among the child's lines of output (anything else is ignored)."""
    said = []
    for line in out.splitlines():
        try:
            each = json.loads(line)
        except ValueError:
            continue
        if isinstance(each, dict):
            said.append(each)
    return said


def _die_with_parent(parent):
    """Ask the kernel to kill this process when its parent dies (Linux); an uncommitted swap is
    then rolled back by SQLite, as after any crash."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        sys.exit(1)


def main(argv):
    live, busy_ms, parent = argv[0], int(argv[1]), int(argv[2])
    _die_with_parent(parent)
    try:
        import sqlean as sqlite
    except ImportError:
        print("sqlean.py is not installed", file=sys.stderr)
        return NOT_APPLICABLE
    swap = None
    try:
        swap = PageSwap(sqlite, live, busy_ms)
        print(READY, flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0  # the restore ended before its swap
        order = json.loads(line)
        swap.attach(order["prepared"])
        result = swap.run(lambda cookie: print(json.dumps({"cookie": cookie}), flush=True),
                          safety=order["safety"])
    except NotApplicable as exc:
        print(str(exc), file=sys.stderr)
        return NOT_APPLICABLE
    except SafetyCopyBroken as exc:
        print(str(exc), file=sys.stderr)
        return SAFETY_BROKEN
    except Exception as exc:  # noqa: BLE001 - one line for the parent's log, no traceback
        print(_reason(exc), file=sys.stderr)
        return 1
    finally:
        if swap is not None:
            swap.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
