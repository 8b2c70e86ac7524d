"""Reading a file back a step behind the one writer that appends to it, compared byte for byte.

A folder copy is packed straight into its temporary file (`FolderStorage.writing`). Reading it
back once it is written would add a pass at the end, and hashing what is written and again what
is read back hashes the copy twice. Instead a `TailedWriter` hands each piece it wrote to the
kernel to a `Follower` thread, which reads the same bytes back from the file (through a
descriptor of its own), compares them with the piece, and hashes what it read: the copy is read
back in full and matched exactly, and its one SHA-256 is the read-back's. The writer also queues
the written part for writeback as it goes, so the closing fsync waits for the last few MiB only.
What is read back is what the file holds: the writer only appends, and each piece is read only
once it is in the file.
"""
import hashlib
import queue
import threading

from ..backup.linux_io import LinuxIO

#: How far (bytes written) the written part is queued for writeback at a time.
STEP = 8 * 1024 * 1024
#: Bytes handed to the follower at a time, at least (a piece may be small, down to one age
#: chunk of 64 KiB: a thread switch for each would cost more than reading it back).
BATCH = 1024 * 1024
#: Batches written and not yet read back, at most (the writer waits): bounds the memory held
#: to about 8 MiB (a batch ends with the piece that reaches `BATCH`).
PENDING = 8
_DONE = None


class Follower:
    """Reads back the file at `path` piece by piece as a writer appends them (`expect`), in a
    thread of its own; `result` says how many bytes matched, and their SHA-256."""

    def __init__(self, path):
        self._file = open(path, "rb", buffering=0)
        self._pieces = queue.Queue(PENDING)
        self._digest = hashlib.sha256()
        self._size = 0
        self._differs = None  # why the read-back does not match, once it does not
        self._error = None
        self._thread = threading.Thread(target=self._run, name="offsite-read-back", daemon=True)
        self._thread.start()

    def expect(self, pieces):
        """`pieces` (a list of bytes) were just written to the file, in that order, after
        everything expected before."""
        self._pieces.put(pieces)

    def done(self):
        """The writer wrote everything: the file must end after the last piece."""
        self._pieces.put(_DONE)

    def _read(self, n):
        parts, left = [], n
        while left:
            part = self._file.read(left)
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _run(self):
        try:
            while True:
                pieces = self._pieces.get()
                if self._differs is not None:
                    if pieces is _DONE:
                        return
                    continue  # keep taking pieces: the writer must never wait for nothing
                if pieces is _DONE:
                    if self._file.read(1):
                        self._differs = "it is longer than what was written"
                    return
                for piece in pieces:  # one at a time: no copy of the batch
                    read = self._read(len(piece))
                    if read != piece:
                        self._differs = "it is shorter than what was written" \
                            if len(read) < len(piece) else \
                            f"it differs from what was written after byte {self._size}"
                        break
                    self._digest.update(read)  # lets go of the GIL, as the read does
                    self._size += len(read)
        except BaseException as exc:  # noqa: BLE001 - handed to `result`
            self._error = exc
            while self._pieces.get() is not _DONE:
                pass
        finally:
            self._file.close()

    def result(self):
        """Wait for the read-back to end (after `done`).

        :return: `(size, sha256)` of the bytes read back, all matching what was written.
        :raises ValueError: what was read back differs. :raises OSError: a read failed.
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._differs is not None:
            raise ValueError(f"the copy read back differs from what was written: {self._differs}")
        return self._size, self._digest.hexdigest()

    def stop(self):
        """Let the thread end (after a failure: what it read no longer matters)."""
        if self._thread.is_alive():
            self._differs = self._differs or "stopped"
            self.done()
            self._thread.join()


class TailedWriter:
    """A writer that writes straight to the unbuffered file `raw`, hands what it wrote to
    `follower` every `BATCH` bytes (and on `flush`), and queues the written part for writeback
    every `STEP` bytes."""

    def __init__(self, raw, follower):
        self._raw, self._follower = raw, follower
        self._io = LinuxIO()
        self._written = self._queued = 0
        self._batch, self._batched = [], 0

    def write(self, data):
        piece = data if type(data) is bytes else bytes(data)  # held until read back: never reused
        view, n = memoryview(piece), len(piece)
        done = 0
        while done < n:
            done += self._raw.write(view[done:])
        self._batch.append(piece)
        self._batched += n
        if self._batched >= BATCH:
            self.flush()
        self._written += n
        if self._written - self._queued >= STEP:
            self._io.start_writeback(self._raw.fileno(), self._queued,
                                     self._written - self._queued)
            self._queued = self._written
        return n

    def flush(self):
        """Hand what was written since the last batch to the follower."""
        if self._batch:
            self._follower.expect(self._batch)
            self._batch, self._batched = [], 0

    def fileno(self):
        return self._raw.fileno()
