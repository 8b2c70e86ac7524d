"""Hand-made LTX files as Litestream leaves them in a file replica, and counting stored versions."""
import struct

from tests.support.seaweed import ADMIN


def write_ltx(staging, level, min_txid, max_txid, stamp):
    """An LTX file as Litestream leaves it in a file replica (its header, then page data)."""
    path = staging / "ltx" / str(level) / f"{min_txid:016x}-{max_txid:016x}.ltx"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">4sIIIQQq", b"LTX1", 2, 4096, 4, min_txid, max_txid, stamp)
    path.write_bytes(header + b"\x00" * 60 + b"page data " * 50)
    return path


def version_counts(seaweed, bucket):
    """`{key: number of versions}` of every object in `bucket` (1 each when unversioned)."""
    found = seaweed.client(ADMIN).list_object_versions(Bucket=bucket)
    counts = {}
    for version in found.get("Versions", ()):
        counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts
