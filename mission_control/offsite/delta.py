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
import hashlib
import io
import json
import os
import struct
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


def page_hashes(path, page_size=None):
    """Hash every page of the database at `path`, streamed (memory: one chunk plus 16 bytes a page).

    :param page_size: read from the SQLite header when not given.
    :raises DeltaError: not an SQLite database, or its size is not a whole number of pages.
    """
    page_size = page_size or read_page_size(path)
    digests = bytearray()
    whole = hashlib.sha256()
    size = 0
    step = max(1, CHUNK // page_size) * page_size
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(step), b""):
            whole.update(chunk)
            size += len(chunk)
            view = memoryview(chunk)
            for start in range(0, len(chunk), page_size):
                digests += _page_hash(view[start:start + page_size])
    if size % page_size:
        raise DeltaError(f"{os.path.basename(path)} is not a whole number of pages")
    return PageHashes(page_size, bytes(digests), size, whole.hexdigest())


@dataclass(frozen=True)
class Changes:
    """The new file's `hashes`, and the numbers of its `pages` that differ from its parent's."""

    hashes: PageHashes
    pages: tuple


def changed_pages(path, parent_hashes):
    """The pages of the database at `path` whose hash differs from `parent_hashes` (or that are new).

    :raises DeltaError: the page size changed (a full copy is needed), or the file is not a database.
    """
    page_size = read_page_size(path)
    if page_size != parent_hashes.page_size:
        raise DeltaError(f"the page size changed ({parent_hashes.page_size} to {page_size}): "
                         "a full copy is needed")
    hashes = page_hashes(path, page_size)
    old, new = parent_hashes.digests, hashes.digests
    pages = tuple(n + 1 for n in range(len(hashes))
                  if new[n * HASH_SIZE:(n + 1) * HASH_SIZE] != old[n * HASH_SIZE:(n + 1) * HASH_SIZE])
    return Changes(hashes, pages)


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


# -- page hashes kept on disk (the sender's record of its last copy) ----------------------------
#: ``MCPH``, format 1: page size (4 bytes), size (8), SHA-256 (32), the digests, then a BLAKE2b
#: (16 bytes) of everything before it, so a damaged file is told from a good one.
HASHES_MAGIC = b"MCPH\x01"
_HASHES_HEADER = struct.Struct(">5sIQ32s")


def save_hashes(path, hashes):
    """Write `hashes` (a `PageHashes`) to the file `path`, atomically (a temporary file beside it,
    fsynced, then renamed over it)."""
    body = _HASHES_HEADER.pack(HASHES_MAGIC, hashes.page_size, hashes.size,
                               bytes.fromhex(hashes.sha256)) + hashes.digests
    body += hashlib.blake2b(body, digest_size=HASH_SIZE).digest()
    folder, base = os.path.split(os.fspath(path))
    temp = os.path.join(folder, f".tmp-{base}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def load_hashes(path):
    """The `PageHashes` saved in the file `path` by `save_hashes`.

    :raises DeltaError: the file is damaged or not one of ours. :raises OSError: unreadable.
    """
    with open(path, "rb") as f:
        data = f.read()
    what = os.path.basename(os.fspath(path))
    head, digests, check = (data[:_HASHES_HEADER.size], data[_HASHES_HEADER.size:-HASH_SIZE],
                            data[-HASH_SIZE:])
    if len(data) < _HASHES_HEADER.size + HASH_SIZE or \
            hashlib.blake2b(data[:-HASH_SIZE], digest_size=HASH_SIZE).digest() != check:
        raise DeltaError(f"{what} is not a page hash file, or it is damaged")
    magic, page_size, size, sha256 = _HASHES_HEADER.unpack(head)
    if magic != HASHES_MAGIC or page_size < 512 or page_size & (page_size - 1) \
            or size % page_size or len(digests) != size // page_size * HASH_SIZE:
        raise DeltaError(f"{what} is not a page hash file, or it is damaged")
    return PageHashes(page_size, digests, size, sha256.hex())
