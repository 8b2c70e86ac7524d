"""Off-site test helpers: the packings, fresh age keys, packed names, and damaged copies."""
import itertools

import pytest

PACKINGS = list(itertools.product(("none", "zstd"), (False, True)))


def new_key():
    """`(identity, recipient)` strings of a fresh age X25519 key pair."""
    pyrage = pytest.importorskip("pyrage")
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def packing(target, compress, encrypt, recipient):
    """The settings that make `target` pack its copies this way."""
    return {f"offsite.{target}.compress": compress,
            f"offsite.{target}.age_recipients": recipient if encrypt else ""}


def expected_name(name, compress, encrypt):
    """The off-site name of backup `name` in that packing."""
    return name + (".zst" if compress == "zstd" else "") + (".age" if encrypt else "")


def damage(path, how):
    """Cut the last 100 bytes off the file ("truncated") or flip one bit in its middle."""
    data = bytearray(path.read_bytes())
    if how == "truncated":
        del data[len(data) - 100:]
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
