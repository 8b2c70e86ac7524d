"""How off-site copies are packed: streamed through zstd and age, and unpacked again, in bounded memory.

A copy's remote name is the backup's name plus ``.zst`` when compressed and ``.age`` when
encrypted, so an admin can always recover by hand with the standard tools::

    age -d -i key.txt mc-backup-....db.zst.age | zstd -d > mc-backup-....db

``zstandard`` and ``pyrage`` are optional (the ``[offsite-crypt]`` extra) and imported only when a
copy needs them. Nothing here ever holds a whole file: data moves in chunks of ``CHUNK`` bytes.
"""
import re
from dataclasses import dataclass

from ..settings import SettingDef
from .delta import full_name
from .streams import AGE_MAGIC, CHUNK, IDENTITY_WORD as _IDENTITY_WORD, MISSING
from .streams import (CopyDamaged, Digesting, DigestingReader, MissingExtra, _recipients,
                      _require, decode, encode_stream, parse_identities)
from .streams import words as _words

#: The byte-stream helpers live in `streams` (standard library only); their old names stay here.
__all__ = ["AGE_MAGIC", "CHUNK", "MISSING", "CopyDamaged", "Digesting", "DigestingReader",
           "MissingExtra", "_recipients", "_require", "decode", "encode_stream",
           "parse_identities", "REMOTE_PATTERN", "parse_recipients", "codec_settings",
           "IDENTITY_SETTING", "Codec", "Encoded", "parse_remote_name", "encode", "is_delta"]

#: Remote names of off-site copies: a rotating backup's name, then `.zst` and/or `.age` (a full
#: copy); or then `.delta.zst` and maybe `.age` (an incremental copy's manifest, `delta`).
REMOTE_PATTERN = re.compile(
    r"^(mc-backup-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.db)(?:\.delta(?=\.zst))?(\.zst)?(\.age)?$")
_RECIPIENT_WORD = "age1[02-9ac-hj-np-z]{58}"
_RECIPIENT = re.compile(f"^{_RECIPIENT_WORD}$")


def _list_of(word):
    """The JSON-schema pattern of a list of `word`s separated by spaces, commas or newlines."""
    return f"^[\\s,]*({word}([\\s,]+{word})*[\\s,]*)?$"


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
        return full_name(backup_name, compressed=self.compressed, encrypted=self.encrypted)


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


def is_delta(remote_name):
    """Whether `remote_name` (a name `REMOTE_PATTERN` matches) is an incremental copy's."""
    return ".delta.zst" in remote_name


def encode(source, sink, codec, hashed=True):
    """Stream the backup file `source` through zstd and age (as `codec` says) into `sink`.

    :param sink: a binary writer (a file, or any object with ``write``).
    :param hashed: false when the caller hashes what is written itself (the `Encoded`'s
        `sha256` is then None).
    :return: an `Encoded`.
    :raises MissingExtra: zstandard or pyrage is needed and not installed.
    :raises OSError: reading or writing failed.
    """
    with open(source, "rb") as raw:
        size = raw.seek(0, 2)
        raw.seek(0)
        result = encode_stream(raw, size, sink, compressed=codec.compressed, level=codec.level,
                               recipients=codec.recipients, hashed=hashed)
    return Encoded(*result, codec.compressed, codec.encrypted)
