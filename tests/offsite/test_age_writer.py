"""age files written with `cryptography` (`age_writer`): what pyrage and the age tool decrypt."""
import io
import os
import shutil
import subprocess

import pytest

from mission_control.offsite.age_writer import PAYLOAD_CHUNK, AgeWriter, recipient_key
from mission_control.offsite.streams import CopyDamaged, decode
from tests.support.offsite import new_key

pyrage = pytest.importorskip("pyrage")

SIZES = [0, 1, PAYLOAD_CHUNK - 1, PAYLOAD_CHUNK, PAYLOAD_CHUNK + 1, 3 * PAYLOAD_CHUNK,
         3 * PAYLOAD_CHUNK + 12_345]


def encrypt(data, recipients, write_size=50_000):
    sink = io.BytesIO()
    writer = AgeWriter(sink, recipients)
    for at in range(0, len(data), write_size):
        writer.write(data[at:at + write_size])
    writer.close()
    return sink.getvalue()


@pytest.mark.parametrize("size", SIZES)
def test_pyrage_decrypts_every_size(size):
    identity, recipient = new_key()
    data = os.urandom(size)
    sealed = encrypt(data, [recipient])
    assert sealed.startswith(b"age-encryption.org/v1\n-> X25519 ")
    chunks = max(1, -(-size // PAYLOAD_CHUNK))
    assert len(sealed) == len(sealed.split(b"\n---", 1)[0]) + 49 + 16 + size + 16 * chunks
    assert pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(identity)]) == data


@pytest.mark.parametrize("write_size", [1, 1000, PAYLOAD_CHUNK, 5 * PAYLOAD_CHUNK + 3])
def test_how_it_is_written_does_not_matter(write_size):
    identity, recipient = new_key()
    data = os.urandom(2 * PAYLOAD_CHUNK + 7) if write_size > 1 else os.urandom(70_000)
    sealed = encrypt(data, [recipient], write_size)
    assert pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(identity)]) == data


def test_every_recipient_can_decrypt_and_no_one_else():
    keys = [new_key() for _ in range(3)]
    data = os.urandom(100_000)
    sealed = encrypt(data, [recipient for _, recipient in keys])
    for identity, _ in keys:
        assert pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(identity)]) == data
    stranger, _ = new_key()
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(stranger)])


@pytest.mark.parametrize("at", ["header", "last chunk", "cut"])
def test_a_changed_file_does_not_decrypt(at):
    identity, recipient = new_key()
    sealed = bytearray(encrypt(os.urandom(PAYLOAD_CHUNK + 10), [recipient]))
    if at == "header":
        sealed[30] ^= 1
    elif at == "last chunk":
        sealed[-5] ^= 1
    else:
        del sealed[-(10 + 16):]  # the last chunk dropped: the one before is not flagged last
    with pytest.raises(CopyDamaged):
        decode(io.BytesIO(bytes(sealed)), io.BytesIO(), compressed=False, encrypted=True,
               identities=identity)


@pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is not installed")
def test_the_age_tool_decrypts_it(tmp_path):
    identity, recipient = new_key()
    data = os.urandom(5 * PAYLOAD_CHUNK + 99)
    (tmp_path / "key.txt").write_text(identity + "\n")
    (tmp_path / "copy.age").write_bytes(encrypt(data, [recipient, new_key()[1]]))
    done = subprocess.run(["age", "-d", "-i", str(tmp_path / "key.txt"),
                           str(tmp_path / "copy.age")], capture_output=True, check=True)
    assert done.stdout == data


def test_recipient_keys_are_checked():
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    assert len(recipient_key(recipient)) == 32
    typo = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")
    for bad in [typo, recipient.upper(), "age1", "age2" + recipient[4:], str(identity)]:
        with pytest.raises(ValueError):
            recipient_key(bad)
    with pytest.raises(ValueError):
        AgeWriter(io.BytesIO(), [])
