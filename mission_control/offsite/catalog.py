"""The catalog a target keeps of its own copies, so a copy can be chosen and checked without the service.

Beside each copy the host writes, once, ``catalog/<copy name>.json.age``: a document signed by the
service's Ed25519 key (the same key as the manifests, `offsite.signing`) holding the copy's record
(names, both sizes and SHA-256s, compression, encryption, time) plus the backup's schema version
and page size, encrypted with age to the target's recipients (``.json`` when the target has none:
its copies are plaintext too). A host that is gone leaves this behind: ``mission-control recover``
decrypts the entries with the age identity, trusts only those whose signature verifies with a
verification key the admin kept, and picks a copy from them.

Encryption hides the list from whoever reads the bucket; the signature, not the encryption, says
who wrote an entry: anyone can encrypt to a public age recipient.
"""
import base64
import io
import json

from .codec import AGE_MAGIC, CopyDamaged, _recipients, _require, parse_identities
from .signing import RECORD_FIELDS, NotAuthentic, _canonical, delta_fields, signed_fields

FORMAT = "mission-control/offsite-catalog/v1"
FOLDER = "catalog/"
#: An entry is well under a kilobyte; anything much larger under catalog/ is not one.
MAX_ENTRY_BYTES = 64 * 1024
ENTRY_FIELDS = RECORD_FIELDS + ("schema_version", "page_size")


def entry_key(remote_name, encrypted):
    """The catalog key of copy `remote_name`."""
    return f"{FOLDER}{remote_name}.json" + (".age" if encrypted else "")


def copy_name(key):
    """The copy a catalog key describes, or None when `key` is not a catalog entry's."""
    if not key.startswith(FOLDER):
        return None
    rest = key[len(FOLDER):]
    for suffix in (".json.age", ".json"):
        if rest.endswith(suffix) and "/" not in rest:
            return rest[:-len(suffix)]
    return None


def sign_entry(private_key, record, schema_version, page_size):
    """The signed entry (JSON bytes) for `record` (a dict of the manifest's `RECORD_FIELDS`)."""
    entry = {**signed_fields(record), "schema_version": int(schema_version),
             "page_size": int(page_size)}
    payload = {"format": FORMAT, "entry": entry}
    signature = private_key.sign(_canonical(payload))
    return json.dumps({**payload, "signature": base64.b64encode(signature).decode()},
                      sort_keys=True).encode()


def build(private_key, record, schema_version, page_size, recipients=()):
    """`(key, bytes)` of the catalog entry of `record`, encrypted to `recipients` when given.

    :param private_key: the service's ``Ed25519PrivateKey`` (`Signer.private_key()`).
    :raises MissingExtra: recipients given and pyrage is not installed.
    """
    signed = sign_entry(private_key, record, schema_version, page_size)
    if not recipients:
        return entry_key(record["remote_name"], False), signed
    out = io.BytesIO()
    _require("pyrage").encrypt_io(io.BytesIO(signed), out, _recipients(recipients))
    return entry_key(record["remote_name"], True), out.getvalue()


def read(data, identities, verify_keys, *, check_signature=True):
    """The entry in catalog object `data` (bytes), decrypted and its signature checked.

    :param identities: age secret keys (text, as ``offsite.age_identity`` holds them).
    :param verify_keys: trusted ``Ed25519PublicKey``s (`signing.parse_verify_keys`).
    :param check_signature: False only for ``recover --unverified``, which says loudly that
        nothing proves who wrote the entry.
    :return: a dict of `ENTRY_FIELDS` (and the `DELTA_FIELDS` of a delta copy).
    :raises CopyDamaged: it cannot be decrypted (wrong identity) or is not an entry.
    :raises NotAuthentic: its signature verifies with none of `verify_keys`.
    :raises MissingExtra: it is encrypted and pyrage is not installed.
    """
    from cryptography.exceptions import InvalidSignature
    if len(data) > MAX_ENTRY_BYTES:
        raise CopyDamaged("the catalog entry is too large to be one")
    if data.startswith(AGE_MAGIC):
        pyrage = _require("pyrage")
        try:
            words = parse_identities(identities or "").split()
        except ValueError as exc:
            raise CopyDamaged(str(exc)) from None
        keys = [pyrage.x25519.Identity.from_str(k) for k in words]
        if not keys:
            raise CopyDamaged("the catalog entry is encrypted and no age identity was given")
        try:
            data = pyrage.decrypt(data, keys)
        except Exception:  # noqa: BLE001 - pyrage's DecryptError and friends
            raise CopyDamaged("the catalog entry cannot be decrypted with this age identity") \
                from None
    try:
        doc = json.loads(data)
        payload = {"format": doc["format"], "entry": doc["entry"]}
        signature = base64.b64decode(doc["signature"], validate=True)
        entry = {k: payload["entry"][k] for k in ENTRY_FIELDS}
        entry.update(delta_fields(payload["entry"]))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):  # planted
        raise CopyDamaged("not a catalog entry of this service") from None
    if payload["format"] != FORMAT:
        raise CopyDamaged("a catalog entry in an unknown format")
    if not check_signature:
        return entry
    for key in verify_keys:
        try:
            key.verify(signature, _canonical(payload))
            return entry
        except InvalidSignature:
            continue
    raise NotAuthentic("its signature does not verify with the given verification key(s): it "
                       "was not written by the service that holds them (it may be planted)")

