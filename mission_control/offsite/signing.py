"""Signed records of off-site copies: the service's own Ed25519 key and the manifests it signs.

Anyone who can write to the off-site storage can encrypt a file to the public age recipient, so
encryption alone does not say who made a copy. Every copy this service uploads is therefore
described by a manifest (target, remote name, SHA-256 of the stored object and of the plain
backup, sizes, time) signed with a key only the service holds: ``offsite-signing.key`` beside the
database (0600, created by the service itself, never read from anywhere else). The manifest goes to
the target beside the copy (``<copy name>.manifest.json``) and into the database. A copy with no
record here and no manifest that verifies is refused as possibly planted.

The verification key (``ed25519:<base64>``) is not secret. It is shown once when the key is made
and by ``mission-control offsite key``; admins keep it with the age identity, and a new host
recovering old copies trusts it through ``MC_OFFSITE_VERIFY_KEYS``.
"""
import base64
import json
import logging
import os
import re
import secrets

from ..errors import (BadRequest, MissionControlError, NotAuthentic,  # noqa: F401 - re-exported
                      describe_error)
from ..files import open_private

log = logging.getLogger(__name__)

KEY_FILE = "offsite-signing.key"
MANIFEST_SUFFIX = ".manifest.json"
FORMAT = "mission-control/offsite-manifest/v1"
KEY_PREFIX = "ed25519:"
#: A manifest is a few hundred bytes; anything much larger on the target is not one of ours.
MAX_MANIFEST_BYTES = 64 * 1024
#: The fields of a copy's record, in the manifest and in table `offsite_copies`.
RECORD_FIELDS = ("target", "remote_name", "backup", "size", "sha256", "plain_size",
                 "plain_sha256", "compressed", "encrypted", "created_at")
#: The fields only an incremental (delta) copy's record has, signed with the others: the remote
#: name of the copy it was made over, the delta copies from its full copy to it, and the other
#: objects it consists of (its pack: ``{name: {"size": n, "sha256": hex}}``).
DELTA_FIELDS = ("parent", "chain_length", "objects")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class ManifestUnreadable(MissionControlError):
    """The target holds a manifest beside the copy but it cannot be read (502, as the copy)."""

    status = 502


def signed_fields(record):
    """The fields of `record` that are signed: `RECORD_FIELDS`, and `DELTA_FIELDS` when it is a
    delta copy's (its ``parent`` is set)."""
    fields = {k: record[k] for k in RECORD_FIELDS}
    if record.get("parent") is not None:
        fields.update({k: record[k] for k in DELTA_FIELDS})
    return fields


def delta_fields(raw):
    """The checked `DELTA_FIELDS` of a signed record or entry `raw` (a dict), or {} for a full
    copy's.

    :raises ValueError: they are present but malformed.
    """
    if raw.get("parent") is None:
        return {}
    parent, length, objects = (raw.get(k) for k in DELTA_FIELDS)
    if not isinstance(parent, str) or not _OBJECT.match(parent):
        raise ValueError("a malformed parent name")
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= 100000:
        raise ValueError("a malformed chain length")
    if not isinstance(objects, dict) or len(objects) > 16 or not all(
            isinstance(k, str) and _OBJECT.match(k) and isinstance(v, dict)
            and isinstance(v.get("size"), int) and not isinstance(v.get("size"), bool)
            and v["size"] >= 0 and isinstance(v.get("sha256"), str) and _SHA256.match(v["sha256"])
            for k, v in objects.items()):
        raise ValueError("a malformed object list")
    return {"parent": parent, "chain_length": length,
            "objects": {k: {"size": v["size"], "sha256": v["sha256"]} for k, v in objects.items()}}


def _canonical(payload):
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def encode_verify_key(public_key):
    """`public_key` (an ``Ed25519PublicKey``) as ``ed25519:<base64 of its 32 bytes>``."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


def parse_verify_keys(value):
    """The ``ed25519:…`` verification keys in `value` (separated by spaces, commas, newlines).

    :return: a tuple of ``Ed25519PublicKey``.
    :raises ValueError: a word is not such a key (the message names it).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    keys = []
    for word in (value or "").replace(",", " ").split():
        try:
            raw = base64.b64decode(word.removeprefix(KEY_PREFIX), validate=True)
            if not word.startswith(KEY_PREFIX) or len(raw) != 32:
                raise ValueError
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError:
            raise ValueError(f"not an off-site verification key (ed25519:…): {word[:20]}") \
                from None
    return tuple(keys)


class Signer:
    """The service's signing key in `path`, made on first use, and the keys it trusts.

    :param path: the private key file (PKCS#8 PEM, 0600).
    :param extra_keys: more trusted verification keys (``Ed25519PublicKey``), e.g. an old host's.
    :param announce: called once with a sentence when the key is created (default: the log).
    """

    def __init__(self, path, extra_keys=(), announce=None):
        self.path = path
        self.extra_keys = tuple(extra_keys)
        self.announce = announce or log.warning

    def _load(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        with open(self.path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode & 0o777
            if mode & 0o077:  # not tightened: it may not be ours to change; say so instead
                log.warning("the off-site signing key %s can be read by other users (mode %#o): "
                            "whoever reads it can sign planted copies; chmod 600 it", self.path,
                            mode)
            return load_pem_private_key(f.read(), password=None)

    def _create(self, announce):
        """Write a new key under a temporary name, then link it into place: a racing process
        either wins or reads the complete file of the one that did."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                                  PrivateFormat)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        tmp = f"{self.path}.{secrets.token_hex(6)}.tmp"
        with open_private(tmp) as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return self._load()
        finally:
            os.unlink(tmp)
        # One line: a log record's line feed would be printed as an escape (`logs.printable`).
        (announce or self.announce)(f"Created the off-site signing key; its verification key is "
                                    f"{encode_verify_key(key.public_key())} (keep it with the "
                                    "age identity: it proves which off-site copies this service "
                                    "made; shown again by `mission-control offsite key`)")
        return key

    def private_key(self, announce=None):
        """The signing key, created (and its verification key announced) when there is none yet.

        :param announce: how to show the verification key once if it is created now (default:
            the signer's `announce`).
        :raises OSError: the key file cannot be read or written.
        """
        try:
            return self._load()
        except FileNotFoundError:
            return self._create(announce)

    def verify_key(self, create=True):
        """Our verification key (``ed25519:…``); None when there is none and not `create`."""
        if not create and not os.path.exists(self.path):
            return None
        return encode_verify_key(self.private_key().public_key())

    def trusted(self):
        """Every verification key a manifest may be signed with: ours (if made) and the extra."""
        own = (self.private_key().public_key(),) if os.path.exists(self.path) else ()
        return own + self.extra_keys

    def sign(self, record):
        """The signed manifest (JSON bytes) of `record`, a dict of `RECORD_FIELDS` (and
        `DELTA_FIELDS` for a delta copy)."""
        payload = {"format": FORMAT, "record": signed_fields(record)}
        signature = self.private_key().sign(_canonical(payload))
        return json.dumps({**payload, "signature": base64.b64encode(signature).decode()},
                          sort_keys=True, indent=1).encode()

    def verify(self, manifest, remote_name):
        """The record in `manifest` (bytes) once its signature and name check out.

        :raises NotAuthentic: not a manifest, signed by no trusted key, or for another copy.
        """
        from cryptography.exceptions import InvalidSignature
        try:
            doc = json.loads(manifest)
            payload = {"format": doc["format"], "record": doc["record"]}
            signature = base64.b64decode(doc["signature"], validate=True)
            record = {k: payload["record"][k] for k in RECORD_FIELDS}
            record.update(delta_fields(payload["record"]))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):  # planted
            raise NotAuthentic("its manifest is not a signed manifest of this service") from None
        if payload["format"] != FORMAT:
            raise NotAuthentic("its manifest is in an unknown format")
        for key in self.trusted():
            try:
                key.verify(signature, _canonical(payload))
                break
            except InvalidSignature:
                continue
        else:
            raise NotAuthentic("its manifest's signature does not verify with this service's "
                               "key (or MC_OFFSITE_VERIFY_KEYS)")
        if record["remote_name"] != remote_name:
            raise NotAuthentic("its signed manifest describes another copy")
        return record


def read_manifest(target, remote_name):
    """The manifest bytes the target holds beside `remote_name`, or None when it has none.

    A target that cannot hold manifests (no ``read_manifest``) has none.
    :raises ManifestUnreadable: the target's own error (an OSError, botocore's many kinds) when
        it cannot be read, described without a traceback.
    """
    reader = getattr(target, "read_manifest", None)
    if not callable(reader):
        return None
    try:
        data = reader(remote_name, MAX_MANIFEST_BYTES + 1)
    except Exception as exc:  # noqa: BLE001 - whatever the plugin's storage raises
        raise ManifestUnreadable("The off-site copy's manifest cannot be read: "
                                 f"{describe_error(exc)}") from None
    if data is not None and len(data) > MAX_MANIFEST_BYTES:
        raise NotAuthentic("its manifest is too large to be one of this service's")
    return data


def authentic_record(mc, target, remote_name):
    """The record of copy `remote_name` at `target`: this database's, or a verified manifest's.

    The database's own row was written by this service when it uploaded the copy; without one,
    the manifest beside the copy must carry a signature by a trusted key (see `Signer.verify`)
    and name this target, and is then remembered here (a copy fetched from it can be restored).
    :return: a dict with the `RECORD_FIELDS`.
    :raises NotAuthentic: neither (the reason says which); the copy must not be used.
    :raises ManifestUnreadable: the manifest beside it cannot be read (502).
    """
    record = mc.offsite.copy_record(target.name, remote_name)
    if record is not None:
        return record
    manifest = read_manifest(target, remote_name)
    if manifest is None:
        raise NotAuthentic(f"{remote_name} is not in the signed record of copies this service "
                           "made (no record here, no signed manifest beside it): it may have "
                           "been planted")
    try:
        record = mc.offsite.signer.verify(manifest, remote_name)
    except NotAuthentic as exc:
        raise NotAuthentic(f"{remote_name} is not in the signed record of copies this service "
                           f"made: {exc.message}") from None
    if record["target"] != target.name:  # a genuine copy and its manifest moved between targets
        raise NotAuthentic(f"{remote_name} is not in the signed record of copies this service "
                           f"made at {target.name}: its signed manifest is of a copy sent to "
                           f"another target ({str(record['target'])[:40]})")
    mc.offsite.remember(record, manifest)
    return record
