"""Writing age v1 files to X25519 recipients with `cryptography`, pushed a chunk at a time.

pyrage's ``encrypt_io`` pulls its input 8 KiB at a time through Python and encrypts at about a
third of the speed of OpenSSL's ChaCha20-Poly1305, which `cryptography` (a core dependency)
wraps: on two cores that was a sixth of an off-site copy's time. This writes the same format
(https://age-encryption.org/v1), which age, rage and pyrage decrypt:

- the header: ``age-encryption.org/v1``, one ``X25519`` stanza per recipient (an ephemeral
  share, and the 16-byte file key wrapped with ChaCha20-Poly1305 under
  HKDF-SHA256(shared secret, share || recipient, "age-encryption.org/v1/X25519")), then
  ``---`` and the HMAC-SHA256 of the header under HKDF-SHA256(file key, "", "header");
- the payload: a 16-byte nonce, then the plain bytes in chunks of 64 KiB, each sealed with
  ChaCha20-Poly1305 under HKDF-SHA256(file key, nonce, "payload"), its nonce an 11-byte
  big-endian counter and a last-chunk flag (only the last chunk may be short; it is empty only
  when everything is).

Only encryption lives here; copies are decrypted with pyrage (`streams.decode`).
"""
import base64
import hashlib
import hmac
import os

PAYLOAD_CHUNK = 64 * 1024
_TAG = 16
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_INTRO = b"age-encryption.org/v1\n"


def _polymod(values):
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1ffffff) << 5 ^ value
        for i, gen in enumerate((0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3)):
            check ^= gen if (top >> i) & 1 else 0
    return check


def recipient_key(recipient):
    """The 32-byte X25519 public key of an ``age1…`` recipient (Bech32, its checksum checked).

    :raises ValueError: not an age X25519 recipient.
    """
    text = recipient.strip()
    hrp, _, data = text.lower().rpartition("1")
    if text != text.lower() or hrp != "age" or len(data) < 6 \
            or any(c not in _BECH32 for c in data):
        raise ValueError("not an age public key (age1…)")
    values = [_BECH32.index(c) for c in data]
    if _polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values) != 1:
        raise ValueError("not an age public key (age1…): its checksum does not match")
    acc = bits = 0
    key = bytearray()
    for value in values[:-6]:
        acc, bits = (acc << 5 | value) & 0xfff, bits + 5
        if bits >= 8:
            bits -= 8
            key.append(acc >> bits & 0xff)
    if len(key) != 32 or acc & ((1 << bits) - 1):
        raise ValueError("not an age public key (age1…): not 32 bytes")
    return bytes(key)


def _b64(data):
    return base64.b64encode(data).rstrip(b"=")


def _hkdf(secret, salt, info):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(hashes.SHA256(), 32, salt, info).derive(secret)


def header(file_key, recipients):
    """The age header (its MAC line included) that gives `file_key` to each recipient."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import (X25519PrivateKey,
                                                                  X25519PublicKey)
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    lines = [_INTRO]
    for recipient in recipients:
        public = recipient_key(recipient)
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))  # ValueError if 0
        wrap = _hkdf(shared, share + public, b"age-encryption.org/v1/X25519")
        body = ChaCha20Poly1305(wrap).encrypt(bytes(12), file_key, None)  # 32 bytes: one line
        lines.append(b"-> X25519 " + _b64(share) + b"\n" + _b64(body) + b"\n")
    head = b"".join(lines) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()
    return head + b" " + _b64(mac) + b"\n"


class AgeWriter:
    """A writer that encrypts what is written to it to `recipients` (``age1…`` keys) as an age
    v1 file into `sink` (anything with ``write``); `close` seals the last chunk (the sink is
    not closed). The header is written at once."""

    def __init__(self, sink, recipients):
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        if not recipients:
            raise ValueError("age needs at least one recipient")
        self._sink = sink
        file_key = os.urandom(16)
        nonce = os.urandom(16)
        sink.write(header(file_key, recipients) + nonce)
        self._seal = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload")).encrypt
        self._held = bytearray()  # at most one chunk: the last one is sealed differently
        self._counter = 0
        self._closed = False

    def write(self, data):
        view = memoryview(data).cast("B")
        sealed, at = [], 0
        if len(self._held) + len(view) <= PAYLOAD_CHUNK:  # no more than one chunk yet: held
            self._held += view
            return len(view)
        if self._held:  # more follows the held bytes: that chunk is whole, and not the last
            at = PAYLOAD_CHUNK - len(self._held)
            self._held += view[:at]
            sealed.append(self._chunk(self._held, False))
        # Whole chunks straight from `data` (no copy), at least one byte kept for the last.
        end = at + (len(view) - at - 1) // PAYLOAD_CHUNK * PAYLOAD_CHUNK
        sealed += [self._chunk(view[i:i + PAYLOAD_CHUNK], False)
                   for i in range(at, end, PAYLOAD_CHUNK)]
        self._held = bytearray(view[end:])
        self._sink.write(b"".join(sealed))
        return len(view)

    def _chunk(self, data, last):
        nonce = self._counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        self._counter += 1
        return self._seal(nonce, data, None)

    def flush(self):
        pass

    def close(self):
        """Seal the last chunk (empty only when nothing was written) into the sink."""
        if not self._closed:
            self._closed = True
            self._sink.write(self._chunk(bytes(self._held), True))
            self._held = bytearray()
