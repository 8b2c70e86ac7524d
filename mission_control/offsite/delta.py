"""Incremental off-site copies: page hashes, delta packs and manifests, and rebuilding any copy of a chain.

A chain starts with a full copy in today's form (``NAME.db.zst.age``: ``age -d | zstd -d`` gives
the database). Each later copy stores only the SQLite pages whose hash differs from its parent's:

* ``NAME.db.pages.zst[.age]``, the pack: the changed pages, whole and in page-number order, as one
  zstd frame (with its checksum and content size), age-encrypted to the target's recipients. A copy
  with no changed page has no pack.
* ``NAME.db.delta.zst[.age]``, the manifest: JSON, compressed and encrypted the same way (see
  `manifest_for`): the format version, page size, page count, size and SHA-256 of the whole file,
  the parent's name, and per changed page its number, pack, offset and length in the unpacked
  pack, and hash (BLAKE2b, 16 bytes).

Pure functions over files and a folder; no service state. Standard library plus the
``[offsite-crypt]`` extra only, so `reassemble` (the console script) runs without the service.
"""
import concurrent.futures
import hashlib
import io
import itertools
import json
import os
import struct
import tempfile
from dataclasses import dataclass

from .streams import CHUNK, encode_stream

FORMAT = 1
HASH_SIZE = 16
HASH_NAME = "blake2b-128"
PACK_PART = ".pages"
MANIFEST_PART = ".delta"
SQLITE_MAGIC = b"SQLite format 3\x00"
#: A chain longer than this is refused when rebuilding (a loop or a runaway chain).
MAX_CHAIN = 10000
#: A manifest larger than this, unpacked, is refused (a 1 TiB database's every page is far less).
MAX_MANIFEST = 512 * 1024 * 1024


class DeltaError(ValueError):
    """A delta could not be written, or a copy not rebuilt; the message names the object."""


def _page_hash(page):
    return hashlib.blake2b(page, digest_size=HASH_SIZE).digest()


def read_page_size(path):
    """The page size in the SQLite header of the database file at `path`.

    :raises DeltaError: the file is not an SQLite database (or its header is damaged).
    """
    with open(path, "rb") as f:
        header = f.read(100)
    return _header_page_size(header, os.path.basename(path))


def _header_page_size(header, what):
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise DeltaError(f"{what} is not an SQLite database")
    size = struct.unpack(">H", header[16:18])[0]
    size = 65536 if size == 1 else size
    if size < 512 or size & (size - 1):
        raise DeltaError(f"{what} has an invalid page size in its header")
    return size


@dataclass(frozen=True)
class PageHashes:
    """The hash of every page of one database file (`digests`: `HASH_SIZE` bytes per page, packed),
    and the whole file's size and SHA-256."""

    page_size: int
    digests: bytes
    size: int
    sha256: str

    def __len__(self):
        return len(self.digests) // HASH_SIZE

    def page(self, number):
        """The digest of page `number` (the first page is 1, as SQLite counts)."""
        start = (number - 1) * HASH_SIZE
        return self.digests[start:start + HASH_SIZE]


#: Bytes read at a time when hashing (a whole number of pages of any size): large reads keep the
#: per-call cost low, two buffers of it bound the memory.
READ_SIZE = 4 * 1024 * 1024


def _advise_sequential(f):
    try:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (AttributeError, OSError):  # not on this platform or file system: only a hint
        pass


def _read_full(f, view):
    """Fill `view` from `f` (short reads are retried); return the bytes read (less only at the end)."""
    have = 0
    while have < len(view):
        got = f.readinto(view[have:])
        if not got:
            break
        have += got
    return have


def _hash_file_pages(path, page_size, parent=None):
    """`(PageHashes, changed)`: every page's hash and the whole file's SHA-256 of the database at
    `path`, in one pass; `changed` lists the pages whose hash differs from `parent`'s (or that it
    lacks), compared chunk by chunk as the chunk is hashed (empty without a parent).

    The whole-file SHA-256 runs in a second thread while this one reads and hashes the pages:
    hashlib releases the GIL for large buffers, so both cores work (sharing the pages between the
    threads too was measured slower: two per-page loops pass the GIL to and fro on every page).
    Memory: two read buffers of `READ_SIZE`, 16 bytes a page.
    """
    step = max(1, READ_SIZE // page_size) * page_size
    buffers = [bytearray(step), bytearray(step)]
    blake2b, digests, changed, size = hashlib.blake2b, bytearray(), [], 0
    old = parent.digests if parent is not None else b""
    whole = hashlib.sha256()
    with open(path, "rb", buffering=0) as f, \
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool:
        _advise_sequential(f)
        pending = [None, None]  # the SHA-256 job still reading each buffer
        for turn in itertools.count():
            slot = turn % 2
            if pending[slot] is not None:
                pending[slot].result()
            view = memoryview(buffers[slot])
            got = _read_full(f, view)
            if not got:
                break
            view = view[:got]
            pending[slot] = pool.submit(whole.update, view)
            first = size // page_size  # index of this chunk's first page
            block = b"".join([blake2b(view[start:start + page_size], digest_size=HASH_SIZE).digest()
                              for start in range(0, got, page_size)])
            digests += block
            size += got
            if parent is not None and block != old[first * HASH_SIZE:first * HASH_SIZE + len(block)]:
                changed.extend(first + n + 1 for n in range(len(block) // HASH_SIZE)
                               if block[n * HASH_SIZE:(n + 1) * HASH_SIZE]
                               != old[(first + n) * HASH_SIZE:(first + n + 1) * HASH_SIZE])
            if got < len(buffers[slot]):
                break
        for job in pending:
            if job is not None:
                job.result()
    if size % page_size:
        raise DeltaError(f"{os.path.basename(path)} is not a whole number of pages")
    return PageHashes(page_size, bytes(digests), size, whole.hexdigest()), changed


def page_hashes(path, page_size=None):
    """Hash every page of the database at `path`, streamed (memory: two reads of `READ_SIZE` plus
    16 bytes a page), with the whole file's SHA-256 computed beside it in a second thread.

    :param page_size: read from the SQLite header when not given.
    :raises DeltaError: not an SQLite database, or its size is not a whole number of pages.
    """
    return _hash_file_pages(path, page_size or read_page_size(path))[0]


#: A page-hash file: this header, the digests (`HASH_SIZE` bytes a page), and the SHA-256 of both.
HASHES_MAGIC = b"MCPAGEHASHES"
HASHES_VERSION = 1
_HASHES_HEADER = struct.Struct(">12sBBHIQ32s")  # magic, version, hash size, 0, page size, size, SHA-256
_HASHES_TRAILER = 32


def save_hashes(path, hashes):
    """Write `hashes` to the file `path` (replaced atomically: a reader sees the old or the new
    file, never a part), so the next copy need not hash its parent's file again."""
    header = _HASHES_HEADER.pack(HASHES_MAGIC, HASHES_VERSION, HASH_SIZE, 0, hashes.page_size,
                                 hashes.size, bytes.fromhex(hashes.sha256))
    check = hashlib.sha256(header)
    check.update(hashes.digests)
    folder, base = os.path.split(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(hashes.digests)
            f.write(check.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def load_hashes(path):
    """The `PageHashes` saved in the file `path` by `save_hashes`.

    :raises DeltaError: the file is not a page-hash file of this version, or it is damaged
        (truncated, extended or any byte changed).
    :raises OSError: the file cannot be read (absent: hash the parent's file instead).
    """
    what = os.path.basename(path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _HASHES_HEADER.size + _HASHES_TRAILER or not data.startswith(HASHES_MAGIC):
        raise DeltaError(f"{what} is not a page-hash file")
    _, version, hash_size, zero, page_size, size, sha256 = _HASHES_HEADER.unpack_from(data)
    if version != HASHES_VERSION or hash_size != HASH_SIZE:
        raise DeltaError(f"{what} is a page-hash file of another version")
    body, trailer = memoryview(data)[:-_HASHES_TRAILER], data[-_HASHES_TRAILER:]
    if hashlib.sha256(body).digest() != trailer:
        raise DeltaError(f"{what} is damaged: its checksum does not match")
    count = len(body) - _HASHES_HEADER.size
    if (zero or page_size < 512 or page_size > 65536 or page_size & (page_size - 1)
            or size % page_size or count != size // page_size * HASH_SIZE):
        raise DeltaError(f"{what} is damaged: its header does not match its length")
    return PageHashes(page_size, bytes(body[_HASHES_HEADER.size:]), size, sha256.hex())


@dataclass(frozen=True)
class Changes:
    """The new file's `hashes`, and the numbers of its `pages` that differ from its parent's."""

    hashes: PageHashes
    pages: tuple


def changed_pages(path, parent_hashes):
    """The pages of the database at `path` whose hash differs from `parent_hashes` (or that are new).

    One pass over the file: its hashes are compared with the parent's as they are made.

    :raises DeltaError: the page size changed (a full copy is needed), or the file is not a database.
    """
    page_size = read_page_size(path)
    if page_size != parent_hashes.page_size:
        raise DeltaError(f"the page size changed ({parent_hashes.page_size} to {page_size}): "
                         "a full copy is needed")
    hashes, changed = _hash_file_pages(path, page_size, parent_hashes)
    return Changes(hashes, tuple(changed))


def full_name(name, *, compressed=True, encrypted=True):
    """The remote name of a full copy of backup `name` (today's form)."""
    return name + (".zst" if compressed else "") + (".age" if encrypted else "")


def pack_name(name, encrypted):
    return name + PACK_PART + ".zst" + (".age" if encrypted else "")


def manifest_name(name, encrypted):
    return name + MANIFEST_PART + ".zst" + (".age" if encrypted else "")


def _write_once(folder, object_name, fill):
    """Create `folder/object_name` from `fill(writer)`, all or nothing; an existing object is refused."""
    final = os.path.join(folder, object_name)
    if os.path.lexists(final):
        raise DeltaError(f"{object_name} already exists: copies are written once")
    temp = os.path.join(folder, f".tmp-{object_name}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            result = fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.link(temp, final)  # fails, rather than replaces, when the name appeared meanwhile
    except FileExistsError:
        raise DeltaError(f"{object_name} already exists: copies are written once") from None
    finally:
        os.unlink(temp)
    return result


@dataclass(frozen=True)
class Written:
    """One object written: its remote name, stored size and SHA-256."""

    name: str
    size: int
    sha256: str


def write_full(source, name, folder, *, recipients=(), level=3):
    """Write the full copy of the backup file `source` to `folder` as ``NAME.zst[.age]``.

    :return: a `Written`.
    """
    object_name = full_name(name, encrypted=bool(recipients))
    with open(source, "rb") as raw:
        size = raw.seek(0, 2)
        raw.seek(0)
        _, _, stored, digest = _write_once(folder, object_name, lambda f: encode_stream(
            raw, size, f, compressed=True, level=level, recipients=recipients))
    return Written(object_name, stored, digest)


class _PagesReader:
    """Reads the `pages` of an open database file, in order, checking each still has its hash."""

    def __init__(self, raw, pages, hashes):
        self._raw, self._pages, self._hashes = raw, iter(pages), hashes
        self._buffer = b""

    def read(self, size=-1):
        size = CHUNK if size is None or size < 0 else size
        parts, have = [self._buffer], len(self._buffer)
        page_size = self._hashes.page_size
        while have < size:
            number = next(self._pages, None)
            if number is None:
                break
            self._raw.seek((number - 1) * page_size)
            page = self._raw.read(page_size)
            if _page_hash(page) != self._hashes.page(number):
                raise DeltaError(f"page {number} changed while it was packed")
            parts.append(page)
            have += len(page)
        data = b"".join(parts)
        self._buffer = data[size:]
        return data[:size]

    def readable(self):
        return True


def manifest_for(name, parent, hashes, pages, pack):
    """The manifest (a dict, JSON-ready) of copy `name` whose `pages` are in the object `pack`."""
    size = hashes.page_size
    return {
        "format": FORMAT, "name": name, "parent": parent, "hash": HASH_NAME,
        "page_size": size, "page_count": len(hashes), "size": hashes.size, "sha256": hashes.sha256,
        "packs": [pack] if pages else [],
        # [page number, pack index, offset, length, hash] per changed page, in page order.
        "pages": [[n, 0, i * size, size, hashes.page(n).hex()] for i, n in enumerate(pages)],
    }


@dataclass(frozen=True)
class Delta:
    """One delta copy written: its `manifest` and `pack` (None when no page changed), the number of
    changed `pages`, and the new file's `hashes` (the parent hashes of the next copy)."""

    name: str
    parent: str
    manifest: Written
    pack: Written | None
    pages: int
    hashes: PageHashes

    @property
    def size(self):
        """Bytes stored for this copy (manifest and pack)."""
        return self.manifest.size + (self.pack.size if self.pack else 0)


def write_delta(source, name, parent, parent_hashes, folder, *, recipients=(), level=3):
    """Write copy `name` of the backup file `source` as a delta over `parent` into `folder`.

    :param parent_hashes: the `PageHashes` of the parent copy's file.
    :return: a `Delta`.
    :raises DeltaError: the page size changed, or the file changed while it was packed.
    """
    changes = changed_pages(source, parent_hashes)
    encrypted = bool(recipients)
    pack = None
    if changes.pages:
        pack_object = pack_name(name, encrypted)
        with open(source, "rb") as raw:
            reader = _PagesReader(raw, changes.pages, changes.hashes)
            length = len(changes.pages) * changes.hashes.page_size
            _, _, stored, digest = _write_once(folder, pack_object, lambda f: encode_stream(
                reader, length, f, compressed=True, level=level, recipients=recipients))
        pack = Written(pack_object, stored, digest)
    body = json.dumps(manifest_for(name, parent, changes.hashes, changes.pages,
                                   pack.name if pack else None),
                      separators=(",", ":")).encode()
    manifest_object = manifest_name(name, encrypted)
    _, _, stored, digest = _write_once(folder, manifest_object, lambda f: encode_stream(
        io.BytesIO(body), len(body), f, compressed=True, level=level, recipients=recipients))
    return Delta(name, parent, Written(manifest_object, stored, digest), pack, len(changes.pages),
                 changes.hashes)

