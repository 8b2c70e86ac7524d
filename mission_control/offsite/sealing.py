"""Each file of the sealed point-in-time stream, signed by the service inside its age envelope.

Encryption alone does not say who wrote a file: whoever can write to the bucket can encrypt a
planted LTX file to the public recipient. So the plaintext of every sealed object is one line, a
JSON document signed with the service's Ed25519 key (`signing.Signer`) that names the object's key
and the size and SHA-256 of the LTX bytes, followed by those bytes. The object still starts with
the age header (nothing is readable without the identity); a reader trusts a file only when the
line verifies with a trusted key, names the key the file was read from (a genuine file copied to
another name is refused), and the bytes that follow match it.
"""
import base64
import hashlib
import json

from ..errors import NotAuthentic
from .codec import CHUNK, CopyDamaged, _recipients, _require, decode
from .signing import _canonical

FORMAT = "mission-control/sealed-ltx/v1"
#: The signed line is about 250 bytes; a longer first line is not one of ours.
MAX_HEADER = 4096
LTX_MAGIC = b"LTX1"


def _header(private_key, key, size, sha256):
    payload = {"format": FORMAT, "key": key, "size": size, "sha256": sha256}
    signature = base64.b64encode(private_key.sign(_canonical(payload))).decode()
    return json.dumps({**payload, "signature": signature}, sort_keys=True).encode() + b"\n"


class _Joined:
    """A reader giving `head` (bytes), then the rest of the file object `body`."""

    def __init__(self, head, body):
        self._head, self._body = head, body

    def read(self, size=-1):
        size = CHUNK if size is None or size < 0 else size
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._body.read(size)

    def readable(self):
        return True


def _digest(path):
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def seal_file(source, sink, key, recipients, private_key):
    """Write the LTX file at `source`, signed for object `key` and age-encrypted, into `sink`.

    :param recipients: age public keys (``age1…``) of the stream.
    :param private_key: the service's ``Ed25519PrivateKey`` (`Signer.private_key()`).
    :raises MissingExtra: pyrage is not installed.
    :raises OSError: reading or writing failed.
    """
    size, sha256 = _digest(source)
    with open(source, "rb") as body:
        _require("pyrage").encrypt_io(_Joined(_header(private_key, key, size, sha256), body),
                                      sink, _recipients(recipients))


class Sealing:
    """How the sealer seals each file: signed by `signer`, encrypted to `recipients`.

    :param recipients: the stream's age public keys.
    :param signer: the service's `signing.Signer`.
    """

    encrypted = True

    def __init__(self, recipients, signer):
        self.recipients = tuple(recipients)
        self.signer = signer

    def seal(self, item, source, sink):
        """Seal the LTX file at `source` (the `LtxFile` `item`) into `sink`."""
        seal_file(source, sink, item.key, self.recipients, self.signer.private_key())


class _Unsealing:
    """A writer that keeps the first line (the signed header) and hashes the rest into `sink`."""

    def __init__(self, sink):
        self.sink = sink
        self.head = b""
        self.ended = False  # the header's newline was seen
        self.legacy = False  # a bare LTX file: sealed before files were signed (or planted)
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data):
        if not self.ended:
            if len(self.head) > MAX_HEADER:
                return len(data)  # not ours; refused once the whole object is read
            self.head += data
            if self.head.startswith(LTX_MAGIC):
                self.ended = self.legacy = True
                data, self.head = self.head, b""
            elif len(self.head) < len(LTX_MAGIC):
                return len(data)
        if not self.ended:
            line, newline, rest = self.head.partition(b"\n")
            if not newline:
                return len(data)
            self.head, self.ended, data = line, True, rest
        self.digest.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        pass


def open_sealed(reader, sink, key, identities, verify_keys, *, check_signature=True):
    """Decrypt the sealed object `key` from `reader` and write its LTX bytes into `sink`.

    The caller removes what `sink` holds when this raises.

    :param verify_keys: trusted ``Ed25519PublicKey``s (`Signer.trusted()`, or the keys given to
        ``recover``).
    :param check_signature: False only for ``recover --unverified``: the line must still name
        `key` and match the bytes; a bare LTX file (sealed before files were signed) is read.
    :raises CopyDamaged: it cannot be decrypted, is not a signed sealed file, or its bytes differ.
    :raises NotAuthentic: its signature verifies with none of `verify_keys`, or it was sealed
        for another key.
    """
    out = _Unsealing(sink)
    decode(reader, out, compressed=False, encrypted=True, identities=identities)
    if out.legacy:
        if check_signature:
            raise CopyDamaged(f"{key} is not a signed file of the stream (sealed before files "
                              "were signed, or planted): only --unverified reads it")
        return
    try:
        if not out.ended:
            raise ValueError
        doc = json.loads(out.head)
        payload = {k: doc[k] for k in ("format", "key", "size", "sha256")}
        signature = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, TypeError, KeyError, RecursionError):
        raise CopyDamaged(f"{key} is not a signed file of the stream (unsigned or planted)") \
            from None
    if payload["format"] != FORMAT:
        raise CopyDamaged(f"{key} is sealed in an unknown format")
    if check_signature:
        _verify(payload, signature, verify_keys, key)
    if payload["key"] != key:
        raise NotAuthentic(f"{key} was sealed as {str(payload['key'])[:80]} (moved or planted)")
    if (payload["size"], payload["sha256"]) != (out.size, out.digest.hexdigest()):
        raise CopyDamaged(f"{key} does not hold the bytes its signed line describes (altered)")


def _verify(payload, signature, verify_keys, key):
    from cryptography.exceptions import InvalidSignature
    for public in verify_keys:
        try:
            public.verify(signature, _canonical(payload))
            return
        except InvalidSignature:
            continue
    raise NotAuthentic(f"{key}: its signature does not verify with the trusted verification "
                       "key(s): it may have been planted")
