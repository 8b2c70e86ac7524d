"""The byte streams of off-site copies: zstd and age, both ways, in bounded memory.

Everything here needs only the standard library plus the optional ``[offsite-crypt]`` extra
(``zstandard``, ``pyrage``, imported when a stream needs them), so the stand-alone
``mission-control-reassemble`` script can use it without the service. Data moves in chunks of
``CHUNK`` bytes; nothing ever holds a whole file.
"""
import hashlib
import re

CHUNK = 1024 * 1024
#: zstd's worker threads for a copy (-1: one per CPU, as `zstd -T0`): compression runs beside
#: the hashing and the age encryption in the calling thread, twice as fast on two cores.
ZSTD_THREADS = -1
#: zstd's job size with worker threads: its default at level 3 (8 MiB) held 57 MiB of buffers
#: (the copy's memory goal is 32 MiB); 2 MiB holds 18 MiB, as fast, 0.03 % larger.
ZSTD_JOB_SIZE = 2 * 1024 * 1024
AGE_MAGIC = b"age-encryption.org/v1\n"
IDENTITY_WORD = "AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}"
_IDENTITY = re.compile(f"^{IDENTITY_WORD}$")
_SEPARATORS = re.compile(r"[\s,]+")
MISSING = "{} is not installed: pip install 'mission-control-backup[offsite-crypt]'"


class MissingExtra(RuntimeError):
    """zstandard or pyrage is needed for this copy and is not installed."""


class CopyDamaged(ValueError):
    """An off-site copy could not be unpacked: wrong identity, truncated or altered bytes."""


def words(value):
    """The words of `value`, separated by spaces, commas or newlines."""
    return [w for w in _SEPARATORS.split(value.strip()) if w]


def parse_identities(value):
    """The age secret keys in `value` (``AGE-SECRET-KEY-1…``; ``#`` comment lines are ignored).

    :raises ValueError: a word is not an age X25519 secret key (the key itself is never echoed).
    """
    lines = [line for line in value.splitlines() if not line.lstrip().startswith("#")]
    keys = words(" ".join(lines))
    if any(not _IDENTITY.match(k) for k in keys):
        raise ValueError("not an age secret key (AGE-SECRET-KEY-1…)")
    return " ".join(keys)


class Digesting:
    """A writer that counts and hashes what passes through it into `sink` (any `.write`); with
    `hashed` false, it only counts (`sha256` is None)."""

    def __init__(self, sink, hashed=True):
        self.sink = sink
        self.size = 0
        self._digest = hashlib.sha256() if hashed else None

    def write(self, data):
        if self._digest is not None:
            self._digest.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        pass

    @property
    def sha256(self):
        return self._digest.hexdigest() if self._digest is not None else None


class DigestingReader(Digesting):
    """A reader that counts and hashes what is read from `source`."""

    def __init__(self, source):
        super().__init__(None)
        self._source = source

    def read(self, size=-1):
        data = self._source.read(CHUNK if size is None or size < 0 else size)
        self._digest.update(data)
        self.size += len(data)
        return data

    def readable(self):
        return True


def _require(module):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(MISSING.format(module)) from None


def _recipients(keys):
    pyrage = _require("pyrage")
    return [pyrage.x25519.Recipient.from_str(k) for k in keys]


def encode_stream(reader, size, sink, *, compressed, level=3, recipients=(), hashed=True):
    """Stream `size` bytes read from `reader` through zstd and age into `sink`.

    :param reader: anything with ``read``; exactly `size` bytes are expected (zstd records it).
    :param recipients: age public keys; none leaves the stream unencrypted.
    :param hashed: false when the caller hashes what is written itself (the `sha256` returned
        is then None; the plain bytes are always hashed).
    :return: `(plain_size, plain_sha256, size, sha256)` of what was read and written.
    :raises MissingExtra: zstandard or pyrage is needed and not installed.
    """
    keys = _recipients(recipients) if recipients else None
    out = digested = Digesting(sink, hashed)
    plain = DigestingReader(reader)
    source = plain
    if compressed:
        zstd = _require("zstandard")
        # The checksum makes a flipped byte detectable; the content size, a truncation.
        params = zstd.ZstdCompressionParameters.from_level(
            level, source_size=size, threads=ZSTD_THREADS, job_size=ZSTD_JOB_SIZE,
            write_checksum=True, write_content_size=True)
        source = zstd.ZstdCompressor(compression_params=params) \
            .stream_reader(plain, size=size, read_size=CHUNK)
    if keys:
        # age as rage writes it (pyrage). A writer of our own on `cryptography`'s ChaCha20-
        # Poly1305 was three times as fast (branch pack26, age_writer.py) but is not shipped:
        # encryption is not written here (docs/performance.md).
        _require("pyrage").encrypt_io(source, out, keys)
    else:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            out.write(chunk)
    return plain.size, plain.sha256, digested.size, digested.sha256


class _Decompressing:
    """A writer that unpacks one zstd frame into `sink`, and can tell whether the frame was whole."""

    def __init__(self, sink):
        zstd = _require("zstandard")
        self._zstd = zstd
        self._sink = sink
        self._header = b""
        self._writer = zstd.ZstdDecompressor().stream_writer(sink, write_size=CHUNK,
                                                             closefd=False)
        self.error = None

    def write(self, data):
        if len(self._header) < 18:  # the longest frame header: its content size is in it
            self._header += data[:18 - len(self._header)]
        try:
            return self._writer.write(data)
        except self._zstd.ZstdError as exc:
            self.error = exc  # pyrage turns it into an I/O error; keep the real reason
            raise

    def flush(self):
        pass

    def finish(self):
        """:raises CopyDamaged: the frame was cut short or altered."""
        try:
            self._writer.flush()
            expected = self._zstd.frame_content_size(self._header)
        except self._zstd.ZstdError as exc:
            raise CopyDamaged(f"cannot decompress: {exc}") from None
        if expected < 0 or expected != self._sink.size:
            raise CopyDamaged("cannot decompress: the compressed copy is truncated")


def decode(reader, sink, *, compressed, encrypted, identities="", hashed=True):
    """Stream a copy from `reader` (anything with ``read``) back to the plain backup in `sink`.

    :param identities: age secret keys (``AGE-SECRET-KEY-1…``), needed when `encrypted`.
    :param hashed: false when the caller hashes what it needs itself (the SHA-256 returned is None).
    :return: `(plain_size, plain_sha256)` of what was written.
    :raises CopyDamaged: wrong or missing identity, truncated or altered copy (the reason says).
    :raises MissingExtra: zstandard or pyrage is needed and not installed.
    """
    out = Digesting(sink, hashed)
    top = _Decompressing(out) if compressed else out
    if encrypted:
        pyrage = _require("pyrage")
        try:
            keys = [pyrage.x25519.Identity.from_str(k)
                    for k in words(parse_identities(identities or ""))]
        except (ValueError, pyrage.IdentityError):
            raise CopyDamaged("the age identity is not an AGE-SECRET-KEY-1… key") from None
        if not keys:
            raise CopyDamaged("the copy is encrypted: an age identity is needed to decrypt it")
        try:
            pyrage.decrypt_io(reader, top, keys)
        except (pyrage.DecryptError, OSError) as exc:
            if getattr(top, "error", None) is not None:
                raise CopyDamaged(f"cannot decompress: {top.error}") from None
            raise CopyDamaged(f"cannot decrypt: {exc}") from None
    else:
        try:
            for chunk in iter(lambda: reader.read(CHUNK), b""):
                top.write(chunk)
        except Exception as exc:  # noqa: BLE001 - only zstd's own errors are about the copy
            if getattr(top, "error", None) is None:
                raise
            raise CopyDamaged(f"cannot decompress: {exc}") from None
    if compressed:
        top.finish()
    return out.size, out.sha256
