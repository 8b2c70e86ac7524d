"""Rebuilding any copy of an incremental chain from a source of objects: a folder, or a storage.

A source (`FolderSource`; the service's is `readback.StorageSource`) answers ``exists(name)`` and
``open(name)`` (a binary reader), and may say what each object must be (``expected(name)``: an
`Expected`, its stored size and SHA-256, and for a full copy its plain size). Every page taken
from a pack is checked against its hash, the result against the page count, size and whole-file
SHA-256 of the copy's manifest; age's authentication and zstd's checksum catch a flipped byte in
any object, an expected SHA-256 any other change, and the error names that object. `rebuild`
writes to a temporary file beside the output and renames it at the end: never a partial file.
Standard library plus the ``[offsite-crypt]`` extra only.
"""
import hashlib
import io
import json
import os
import queue
import tempfile
import threading
from dataclasses import dataclass

from .delta import (FORMAT, HASH_SIZE, MAX_CHAIN, MAX_MANIFEST, DeltaError, _header_page_size,
                    full_name, manifest_name)
from .streams import CHUNK, CopyDamaged, DigestingReader, decode


class CopyNotFound(DeltaError):
    """The source holds no copy (full or delta) of that name."""


@dataclass(frozen=True)
class Expected:
    """What one object must be: its stored `size` and `sha256`, and for a full copy the most
    bytes it may unpack to (`plain_size`; None: not known)."""

    size: int
    sha256: str
    plain_size: int | None = None


class FolderSource:
    """The objects in a local folder (what the console script reads); nothing is expected of them
    beyond what they say themselves."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)

    def exists(self, name):
        return os.path.isfile(os.path.join(self.folder, name))

    def open(self, name):
        return open(os.path.join(self.folder, name), "rb")

    def expected(self, name):
        return None


def as_source(source):
    """A `FolderSource` of `source` when it is a folder's path, else `source` itself."""
    return FolderSource(source) if isinstance(source, (str, os.PathLike)) else source


def _object_form(name):
    """`(compressed, encrypted)` of an object's remote name."""
    return ".zst" in name[-8:], name.endswith(".age")


def _find(source, name):
    """`(kind, object_name)` of copy `name` in `source`: ``"full"`` (preferred: it needs nothing
    else) or ``"delta"``; None when absent."""
    for compressed in (True, False):
        for encrypted in (True, False):
            candidate = full_name(name, compressed=compressed, encrypted=encrypted)
            if source.exists(candidate):
                return "full", candidate
    for encrypted in (True, False):
        candidate = manifest_name(name, encrypted)
        if source.exists(candidate):
            return "delta", candidate
    return None


class _Capped(io.BytesIO):
    """A memory sink refusing more than `MAX_MANIFEST` bytes of object `name`."""

    def __init__(self, name):
        super().__init__()
        self.name = name

    def write(self, data):
        if self.tell() + len(data) > MAX_MANIFEST:
            raise DeltaError(f"{self.name} is too large for a manifest")
        return super().write(data)


class _Guarded:
    """The writer an object unpacks into: refuses to pass `cap` bytes (None: no cap; a small zstd
    object can unpack to any size), and keeps why a write failed (pyrage turns a writer's
    exception, a full disk or a page's wrong hash, into its own error)."""

    def __init__(self, sink, cap, object_name):
        self._sink, self._cap, self._object = sink, cap, object_name
        self.size = 0
        self.failure = None

    def write(self, data):
        if self._cap is not None and self.size + len(data) > self._cap:
            self.failure = DeltaError(f"{self._object} unpacks to more than the {self._cap} "
                                      "bytes recorded for it: unpacking stopped there")
            raise self.failure
        try:
            self._sink.write(data)
        except BaseException as exc:
            self.failure = exc
            raise
        self.size += len(data)
        return len(data)

    def flush(self):
        pass


def _decode_object(source, object_name, sink, identities, hashed=True):
    """Unpack `object_name` from `source` into `sink`; `(plain size, plain SHA-256)`.

    What the source expects of the object is checked: its stored size and SHA-256 (after reading
    it whole), and that it unpacks to no more than its plain size.
    """
    compressed, encrypted = _object_form(object_name)
    expected = source.expected(object_name)
    sink = _Guarded(sink, expected.plain_size if expected is not None else None, object_name)
    try:
        reader = source.open(object_name)
    except FileNotFoundError:
        raise CopyNotFound(f"{object_name} is not there (it was listed a moment ago)") from None
    try:
        stored = DigestingReader(reader)
        result = decode(stored, sink, compressed=compressed, encrypted=encrypted,
                        identities=identities, hashed=hashed)
        for _ in iter(lambda: stored.read(CHUNK), b""):
            pass  # bytes after what decode needed are part of the stored object
    except Exception as exc:
        # Our own writer's failure first (a cap, a page's hash, a full disk): pyrage hides it.
        if sink.failure is not None:
            raise sink.failure from None
        if isinstance(exc, CopyDamaged):
            raise DeltaError(f"{object_name} is damaged or not readable with this identity: "
                             f"{exc}") from None
        raise
    finally:
        reader.close()
    if expected is not None and (stored.size != expected.size
                                 or stored.sha256 != expected.sha256):
        raise DeltaError(f"{object_name} is not the object that was sent: its stored bytes' "
                         + ("size" if stored.size != expected.size else "SHA-256")
                         + " differs from its signed record")
    return result


def _is_plain_name(value):
    return (isinstance(value, str) and value and os.path.basename(value) == value
            and not value.startswith(".") and "\x00" not in value)


def _check_manifest(doc, name, object_name):
    def bad(why):
        return DeltaError(f"{object_name} is not a valid manifest: {why}")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"not format {FORMAT}")
    if doc.get("name") != name:
        raise bad("it names another copy")
    if not _is_plain_name(doc.get("parent")):
        raise bad("no parent name")
    ints = ("page_size", "page_count", "size")
    if any(not isinstance(doc.get(k), int) or isinstance(doc.get(k), bool) or doc[k] < 0
           for k in ints):
        raise bad("page size, page count or size missing")
    if doc["size"] != doc["page_size"] * doc["page_count"]:
        raise bad("its size is not its page count times its page size")
    packs, pages = doc.get("packs"), doc.get("pages")
    if not isinstance(packs, list) or not all(_is_plain_name(p) for p in packs):
        raise bad("bad pack names")
    if not isinstance(pages, list) or not isinstance(doc.get("sha256"), str):
        raise bad("no page list or SHA-256")
    last_page, pack_end = 0, {}
    for entry in pages:
        ok = (isinstance(entry, list) and len(entry) == 5
              and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:4]))
        # Pages in increasing order, each at or past the end of the previous one in its pack.
        if not ok or not (last_page < entry[0] <= doc["page_count"] and 0 <= entry[1] < len(packs)
                          and entry[3] == doc["page_size"]
                          and entry[2] >= pack_end.get(entry[1], 0)):
            raise bad("a page entry is out of range or out of order")
        last_page, pack_end[entry[1]] = entry[0], entry[2] + entry[3]
        try:
            if len(bytes.fromhex(entry[4])) != HASH_SIZE:
                raise ValueError
        except (TypeError, ValueError):
            raise bad("a page hash is malformed") from None
    return doc


def load_manifest(source, object_name, name, identities=""):
    """The checked manifest (a dict) in `object_name` of `source` (or a folder), of copy `name`.

    :raises DeltaError: the object is damaged, unreadable with `identities`, or not a manifest.
    """
    sink = _Capped(object_name)
    _decode_object(as_source(source), object_name, sink, identities)
    try:
        doc = json.loads(sink.getvalue())
    except ValueError:
        raise DeltaError(f"{object_name} is not a valid manifest: not JSON") from None
    return _check_manifest(doc, name, object_name)


@dataclass(frozen=True)
class Chain:
    """Copy `name`'s chain: its `full` copy's object, and its manifests, oldest first."""

    name: str
    full: str
    manifests: tuple


def load_chain(source, name, identities=""):
    """Follow copy `name`'s parents in `source` (or a folder) back to a full copy.

    :raises CopyNotFound: `name`, or a parent it needs, is not in the source.
    :raises DeltaError: a manifest is damaged, the chain loops or the page size changes in it.
    """
    source = as_source(source)
    where = "the folder" if isinstance(source, FolderSource) else "the storage"
    manifests, seen, current = [], set(), name
    while True:
        found = _find(source, current)
        if found is None:
            needed = f" (needed by {name})" if current != name else ""
            raise CopyNotFound(f"no copy named {current} in {where}{needed}")
        kind, object_name = found
        if kind == "full":
            break
        if current in seen or len(seen) >= MAX_CHAIN:
            raise DeltaError(f"the chain of {name} loops or is too long at {current}")
        seen.add(current)
        doc = load_manifest(source, object_name, current, identities)
        doc["_object"] = object_name
        manifests.append(doc)
        current = doc["parent"]
    manifests.reverse()
    if len({doc["page_size"] for doc in manifests}) > 1:
        raise DeltaError(f"the page size changes within the chain of {name}")
    return Chain(name, object_name, tuple(manifests))


class _PagePicker:
    """A writer given an unpacked pack: writes its `wanted` pages at their place in `out`, checked."""

    def __init__(self, out, wanted, page_size, pack):
        self._out, self._page_size, self._pack = out, page_size, pack
        self._wanted = sorted(wanted)  # (offset, length, page number, hash)
        self._next = 0
        self._position = 0
        self._buffer = bytearray()

    def write(self, data):
        data, size = memoryview(data), len(data)
        while self._next < len(self._wanted):
            offset, length, number, digest = self._wanted[self._next]
            start, end = offset + len(self._buffer), offset + length
            if start >= self._position + size:
                break
            self._buffer += data[start - self._position:min(end - self._position, size)]
            if offset + len(self._buffer) < end:
                break
            if hashlib.blake2b(self._buffer, digest_size=HASH_SIZE).digest() != digest:
                raise DeltaError(f"{self._pack}: page {number} does not match its hash")
            self._out.seek((number - 1) * self._page_size)
            self._out.write(self._buffer)
            self._buffer = bytearray()
            self._next += 1
        self._position += size
        return size

    def flush(self):
        pass

    def finish(self):
        if self._next < len(self._wanted):
            raise DeltaError(f"{self._pack} is shorter than its manifest says")


@dataclass(frozen=True)
class Rebuilt:
    """A copy rebuilt: its `size`, `sha256`, and the `objects` read (full copy first)."""

    name: str
    size: int
    sha256: str
    objects: tuple


class _Hasher:
    """SHA-256 of what it is fed, in order, in a worker thread (hashlib releases the GIL on large
    buffers, so the hashing runs beside the unpacking); at most `DEPTH` pieces wait."""

    DEPTH = 16

    def __init__(self):
        self._digest = hashlib.sha256()
        self._queue = queue.Queue(self.DEPTH)
        self._thread = threading.Thread(target=self._run, name="rebuild-sha256", daemon=True)
        self._thread.start()

    def _run(self):
        for piece in iter(self._queue.get, None):
            if self._digest is not None:
                try:
                    self._digest.update(piece)
                except Exception:  # noqa: BLE001 - keep taking pieces: a feeder never blocks
                    self._digest = None

    def update(self, piece):
        self._queue.put(piece)

    def close(self):
        """Stop the worker (idempotent); return the hex digest of everything fed (None when the
        hashing failed: the copy then does not check)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        return self._digest.hexdigest() if self._digest is not None else None


def _pwrite_all(fd, data, offset):
    while data:
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done


class _Merging:
    """A writer given the unpacked full copy, in order: writes each of its pages that no pack
    replaces into the file `fd` (up to the copy's `size`), and feeds `hasher` the copy as it ends
    up, in order: for a replaced page, the pack's page already in the file is read back."""

    def __init__(self, fd, replaced, page_size, size, hasher, full):
        self._fd, self._page_size, self._size, self._hasher = fd, page_size, size, hasher
        self._full = full
        self._replaced = [(n - 1) * page_size for n in sorted(replaced)] + [float("inf")]
        self._next = 0  # index in `_replaced` of the next replaced page at or after `_done`
        self._done = 0  # bytes of the copy hashed so far
        self._position = 0  # bytes of the full copy received so far
        self._header = b""

    def write(self, data):
        if len(self._header) < 100:
            self._header += bytes(data[:100 - len(self._header)])
            if len(self._header) == 100 and _header_page_size(self._header, self._full) \
                    != self._page_size:
                raise DeltaError(f"{self._full} has another page size than the chain over it")
        view, start = memoryview(data), self._position
        self._position += len(view)
        self._advance(min(self._position, self._size), view, start)
        return len(view)

    def _advance(self, end, view=None, start=0):
        """Write and hash the copy up to byte `end`: from `view` (the full copy's bytes from offset
        `start`) where no pack replaces a page; from the file where one does, or past `view`."""
        while self._done < end:
            replaced = self._replaced[self._next]
            if self._done >= replaced:  # a pack's page: already in the file
                page = os.pread(self._fd, self._page_size, replaced)
                if len(page) != self._page_size:
                    raise DeltaError(f"{self._full}: a page of the chain is missing")
                self._hasher.update(page)
                self._done, self._next = replaced + self._page_size, self._next + 1
                continue
            stop = min(end, replaced)
            if view is None:  # past the full copy's end: only packs' pages can be there
                raise DeltaError(f"{self._full} is shorter than its chain needs")
            piece = view[self._done - start:stop - start]
            _pwrite_all(self._fd, piece, self._done)
            self._hasher.update(piece)
            self._done = stop

    def finish(self):
        """Hash the pages past the full copy's end (the file grew: all from packs)."""
        if len(self._header) < 100:
            raise DeltaError(f"{self._full} is too short for a database")
        self._advance(self._size)

    def flush(self):
        pass


def _check_size(chain, plain_size):
    """Refuse, before a byte is written, a chain whose copy is not `plain_size` bytes (None: any)."""
    if plain_size is None or not chain.manifests:
        return
    last = chain.manifests[-1]
    if last["size"] != plain_size:
        raise DeltaError(f"{last['_object']} describes a copy of {last['size']} bytes, its signed "
                         f"record says {plain_size}: nothing was written")


def _chain_pages(chain):
    """`{pack: [(offset, length, page number, digest), ...]}`: where each page of the last copy
    that a manifest names is found, the newest copy's winning."""
    last = chain.manifests[-1]
    owner = {}
    for doc in reversed(chain.manifests):
        for number, pack, offset, length, digest in doc["pages"]:
            if number <= last["page_count"] and number not in owner:
                owner[number] = (doc["packs"][pack], offset, length, bytes.fromhex(digest))
    by_pack = {}
    for number, (pack, offset, length, digest) in owner.items():
        by_pack.setdefault(pack, []).append((offset, length, number, digest))
    return by_pack


def _fill(f, source, chain, identities):
    """Write the copy `chain` describes into the open file `f`; return the objects read (full copy
    first) and the SHA-256 of what was written.

    One pass over the output: the packs' pages are written first, at their places; then the full
    copy is unpacked around them while a worker thread hashes the result in order."""
    if not chain.manifests:
        _, sha256 = _decode_object(source, chain.full, f, identities)
        f.flush()
        return [chain.full], sha256
    last = chain.manifests[-1]
    page_size = last["page_size"]
    f.truncate(last["size"])
    by_pack = _chain_pages(chain)
    replaced = [number for pages in by_pack.values() for _, _, number, _ in pages]
    objects = [chain.full]
    for doc in chain.manifests:
        objects.append(doc["_object"])
        for pack in doc["packs"]:
            if pack in by_pack and pack not in objects:
                picker = _PagePicker(f, by_pack.pop(pack), page_size, pack)
                _decode_object(source, pack, picker, identities)
                picker.finish()
                objects.append(pack)
    if by_pack:
        raise DeltaError(f"{sorted(by_pack)[0]} is named by a manifest but not in its chain")
    f.flush()
    hasher = _Hasher()
    try:
        merging = _Merging(f.fileno(), replaced, page_size, last["size"], hasher, chain.full)
        _decode_object(source, chain.full, merging, identities, hashed=False)
        merging.finish()
    finally:
        sha256 = hasher.close()
    size = os.fstat(f.fileno()).st_size
    if size != last["size"] or sha256 != last["sha256"]:
        raise DeltaError(f"{chain.name}: the rebuilt copy does not match the size and SHA-256 "
                         f"its manifest {last['_object']} records")
    return objects, sha256


def rebuild_into(f, source, name, identities="", *, plain_size=None):
    """Rebuild copy `name` from `source` into the open, empty file `f` (``w+b`` or ``r+b``).

    The caller owns `f`: on failure it holds part of a copy and must be removed.
    :param plain_size: the size the copy must have (its signed record's): a chain describing
        another size is refused before anything is written.
    :return: a `Rebuilt`.
    :raises CopyNotFound, DeltaError: as `rebuild`.
    """
    source = as_source(source)
    chain = load_chain(source, name, identities)
    _check_size(chain, plain_size)
    objects, sha256 = _fill(f, source, chain, identities)
    size = f.seek(0, 2)
    if plain_size is not None and size != plain_size:
        raise DeltaError(f"{chain.full} unpacks to {size} bytes, its signed record says "
                         f"{plain_size}")
    return Rebuilt(name, size, sha256, tuple(objects))


def rebuild(source, name, out, identities="", *, plain_size=None):
    """Rebuild copy `name` from the objects in `source` (a folder, or a source) into the file
    `out` (never partially).

    :param identities: age secret keys, needed when the objects are encrypted.
    :param plain_size: see `rebuild_into`.
    :return: a `Rebuilt`.
    :raises CopyNotFound: the copy, or one its chain needs, is not in the source.
    :raises DeltaError: an object is damaged (named), or the rebuilt copy does not check.
    """
    source = as_source(source)
    chain = load_chain(source, name, identities)
    _check_size(chain, plain_size)
    where = os.path.dirname(os.path.abspath(out))
    fd, temp = tempfile.mkstemp(dir=where, prefix=f".{os.path.basename(out)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            objects, sha256 = _fill(f, source, chain, identities)
            size = f.seek(0, 2)
            os.fsync(f.fileno())
        os.replace(temp, out)
    except BaseException:
        os.unlink(temp)
        raise
    return Rebuilt(name, size, sha256, tuple(objects))
