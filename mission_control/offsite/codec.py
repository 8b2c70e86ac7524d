"""How off-site copies are packed: streamed through zstd and age, and unpacked again, in bounded memory.

A copy's remote name is the backup's name plus ``.zst`` when compressed and ``.age`` when
encrypted, so an admin can always recover by hand with the standard tools::

    age -d -i key.txt mc-backup-....db.zst.age | zstd -d > mc-backup-....db

``zstandard`` and ``pyrage`` are optional (the ``[offsite-crypt]`` extra) and imported only when a
copy needs them. Nothing here ever holds a whole file: data moves in chunks of ``CHUNK`` bytes.
"""
import hashlib
import re
from dataclasses import dataclass

from ..settings import SettingDef

CHUNK = 1024 * 1024
AGE_MAGIC = b"age-encryption.org/v1\n"
#: Remote names of off-site copies: a rotating backup's name, then `.zst` and/or `.age`.
REMOTE_PATTERN = re.compile(
    r"^(mc-backup-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.db)(\.zst)?(\.age)?$")
_RECIPIENT_WORD = "age1[02-9ac-hj-np-z]{58}"
_IDENTITY_WORD = "AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}"
_RECIPIENT = re.compile(f"^{_RECIPIENT_WORD}$")
_IDENTITY = re.compile(f"^{_IDENTITY_WORD}$")
_SEPARATORS = re.compile(r"[\s,]+")


def _list_of(word):
    """The JSON-schema pattern of a list of `word`s separated by spaces, commas or newlines."""
    return f"^[\\s,]*({word}([\\s,]+{word})*[\\s,]*)?$"
MISSING = "{} is not installed: pip install 'mission-control-backup[offsite-crypt]'"


class MissingExtra(RuntimeError):
    """zstandard or pyrage is needed for this copy and is not installed."""


class CopyDamaged(ValueError):
    """An off-site copy could not be unpacked: wrong identity, truncated or altered bytes."""


def _words(value):
    return [w for w in _SEPARATORS.split(value.strip()) if w]


def parse_recipients(value):
    """The age public keys in `value` (separated by spaces, commas or newlines), canonical.

    :return: the keys joined by single spaces ("" for none).
    :raises ValueError: a word is not an ``age1…`` X25519 public key.
    """
    keys = _words(value)
    bad = [k for k in keys if not _RECIPIENT.match(k)]
    if not bad:
        try:
            import pyrage
        except ImportError:
            pyrage = None  # the copy itself reports the missing extra
        for key in keys if pyrage else ():
            try:
                pyrage.x25519.Recipient.from_str(key)
            except pyrage.RecipientError:
                bad.append(key)  # a typo: the Bech32 checksum does not match
    if bad:
        raise ValueError(f"not an age public key (age1…): {bad[0][:16]}…")
    return " ".join(keys)


def parse_identities(value):
    """The age secret keys in `value` (``AGE-SECRET-KEY-1…``; ``#`` comment lines are ignored).

    :raises ValueError: a word is not an age X25519 secret key (the key itself is never echoed).
    """
    lines = [line for line in value.splitlines() if not line.lstrip().startswith("#")]
    keys = _words(" ".join(lines))
    if any(not _IDENTITY.match(k) for k in keys):
        raise ValueError("not an age secret key (AGE-SECRET-KEY-1…)")
    return " ".join(keys)


def codec_settings(target):
    """The three settings every off-site target declares: compression, its level, recipients."""
    def setting(key, *args, **kw):
        return SettingDef(f"offsite.{target}.{key}", *args, "offsite", **kw)
    return [
        setting("compress", "text", "none", "Compress each copy: none, or zstd (adds .zst)",
                choices=("none", "zstd")),
        setting("zstd_level", "int", "3", "zstd level (1 fast … 19 small)", minimum=1,
                maximum=19),
        setting("age_recipients", "text", "", "age public keys (age1…, separated by spaces, "
                "commas or newlines); when set, each copy is encrypted to all of them (adds "
                ".age)", max_length=10000, clean=parse_recipients,
                pattern=_list_of(_RECIPIENT_WORD)),
    ]


#: The secret age identity that fetches and restore drills decrypt with; never returned by the API.
IDENTITY_SETTING = SettingDef(
    "offsite.age_identity", "text", "", "age secret key(s) (AGE-SECRET-KEY-1…) used to decrypt "
    "off-site copies when fetching them back or drilling a restore; keep a copy elsewhere too",
    "offsite", secret=True, max_length=10000, clean=parse_identities,
    pattern=_list_of(_IDENTITY_WORD))


@dataclass(frozen=True)
class Codec:
    """How one target packs its copies: `compress` ("none" or "zstd"), zstd `level`, `recipients`."""

    compress: str = "none"
    level: int = 3
    recipients: tuple = ()

    @classmethod
    def from_settings(cls, settings, target):
        """The codec the settings of `target` ask for (``offsite.<target>.*``)."""
        get = settings.get
        return cls(get(f"offsite.{target}.compress"), get(f"offsite.{target}.zstd_level"),
                   tuple(_words(get(f"offsite.{target}.age_recipients"))))

    @property
    def compressed(self):
        return self.compress == "zstd"

    @property
    def encrypted(self):
        return bool(self.recipients)

    @property
    def plain(self):
        return not (self.compressed or self.encrypted)

    def remote_name(self, backup_name):
        return backup_name + (".zst" if self.compressed else "") + (".age" if self.encrypted else "")


@dataclass(frozen=True)
class Encoded:
    """What `encode` wrote: the plain backup's and the stored bytes' sizes and SHA-256."""

    plain_size: int
    plain_sha256: str
    size: int
    sha256: str
    compressed: bool
    encrypted: bool

    @property
    def ratio(self):
        """Stored size over plain size (0.25 means a quarter of the original)."""
        return round(self.size / self.plain_size, 4) if self.plain_size else None


def parse_remote_name(name):
    """`(backup_name, compressed, encrypted)` of a remote copy's name, or None when it is not one."""
    found = REMOTE_PATTERN.match(name) if isinstance(name, str) else None
    if not found:
        return None
    return found.group(1), bool(found.group(2)), bool(found.group(3))


class Digesting:
    """A writer that counts and hashes what passes through it into `sink` (any `.write`)."""

    def __init__(self, sink):
        self.sink = sink
        self.size = 0
        self._digest = hashlib.sha256()

    def write(self, data):
        self._digest.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        pass

    @property
    def sha256(self):
        return self._digest.hexdigest()


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


def encode(source, sink, codec):
    """Stream the backup file `source` through zstd and age (as `codec` says) into `sink`.

    :param sink: a binary writer (a file, or any object with ``write``).
    :return: an `Encoded`.
    :raises MissingExtra: zstandard or pyrage is needed and not installed.
    :raises OSError: reading or writing failed.
    """
    recipients = _recipients(codec.recipients) if codec.encrypted else None
    out = Digesting(sink)
    with open(source, "rb") as raw:
        plain = DigestingReader(raw)
        reader = plain
        if codec.compressed:
            zstd = _require("zstandard")
            size = raw.seek(0, 2)
            raw.seek(0)
            # The checksum makes a flipped byte detectable; the content size, a truncation.
            reader = zstd.ZstdCompressor(level=codec.level, write_checksum=True) \
                .stream_reader(plain, size=size, read_size=CHUNK)
        if recipients:
            _require("pyrage").encrypt_io(reader, out, recipients)
        else:
            for chunk in iter(lambda: reader.read(CHUNK), b""):
                out.write(chunk)
    return Encoded(plain.size, plain.sha256, out.size, out.sha256, codec.compressed,
                   codec.encrypted)


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


def decode(reader, sink, *, compressed, encrypted, identities=""):
    """Stream a copy from `reader` (anything with ``read``) back to the plain backup in `sink`.

    :param identities: age secret keys (``AGE-SECRET-KEY-1…``), needed when `encrypted`.
    :return: `(plain_size, plain_sha256)` of what was written.
    :raises CopyDamaged: wrong or missing identity, truncated or altered copy (the reason says).
    :raises MissingExtra: zstandard or pyrage is needed and not installed.
    """
    out = Digesting(sink)
    top = _Decompressing(out) if compressed else out
    if encrypted:
        pyrage = _require("pyrage")
        try:
            keys = [pyrage.x25519.Identity.from_str(k)
                    for k in _words(parse_identities(identities or ""))]
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
