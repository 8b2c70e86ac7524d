"""A folder copy packed straight into the folder's temporary file: read back beside the fsync,
and named only when what was read back matches what was written."""
import hashlib
import os

import pytest

from mission_control.offsite import tailing
from mission_control.offsite.codec import Codec, decode
from mission_control.offsite.putting import pack_into
from mission_control.offsite.storage import TEMP_PREFIX, FolderStorage
from tests.support.offsite import new_key

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")

KEY = "mc-backup-2026-12-06_12-00-00.db.zst.age"


@pytest.fixture
def nas(tmp_path):
    folder = tmp_path / "nas"
    folder.mkdir()
    return folder


@pytest.fixture
def source(tmp_path):
    """A backup-sized-ish file: text that compresses and bytes that do not, over several chunks."""
    path = tmp_path / "backups" / "mc-backup-2026-12-06_12-00-00.db"
    path.parent.mkdir()
    path.write_bytes((b"mission control " * 70_000) + os.urandom(3 * 1024 * 1024 + 17))
    return path


def test_a_placed_object_carries_the_sha256_read_back(nas):
    storage = FolderStorage(nas)
    data = os.urandom(300_000)
    with storage.writing("a/b.bin", read_back=True) as temp:
        for at in range(0, len(data), 70_000):
            temp.file.write(memoryview(data)[at:at + 70_000])
        assert os.path.basename(temp.path).startswith(TEMP_PREFIX)
        assert storage.head("a/b.bin") is None  # no name before it is placed
        placed = temp.place(len(data))
    assert placed.key == "a/b.bin" and placed.size == len(data)
    assert placed.sha256 == temp.sha256 == hashlib.sha256(data).hexdigest()
    assert (nas / "a" / "b.bin").read_bytes() == data
    assert oct((nas / "a" / "b.bin").stat().st_mode & 0o777) == "0o600"
    assert sorted(os.listdir(nas / "a")) == ["b.bin"]  # the temporary name is gone


def test_more_than_the_follower_may_hold_is_written_and_read_back(nas, monkeypatch):
    monkeypatch.setattr(tailing, "STEP", 64 * 1024)  # writeback queued many times too
    storage = FolderStorage(nas)
    count = 4 * tailing.PENDING * tailing.BATCH // 40_000  # the writer waits for the follower
    pieces = [os.urandom(40_000 + i) for i in range(count)]
    with storage.writing("k", read_back=True) as temp:
        for piece in pieces:
            temp.file.write(piece)
        placed = temp.place(sum(map(len, pieces)))
    assert placed.sha256 == hashlib.sha256(b"".join(pieces)).hexdigest()


@pytest.mark.parametrize("how", ["slipped in", "overwritten", "grown", "size claimed"])
def test_bytes_that_differ_from_what_was_written_never_take_the_name(nas, how):
    storage = FolderStorage(nas)
    data = os.urandom(200_000)
    with pytest.raises(ValueError, match="read back"):
        with storage.writing("copy.bin", read_back=True) as temp:
            temp.file.write(data[:100_000])
            # Each change lands where the follower has not read yet (what it already read and
            # matched is the copy's, as with any read-back).
            if how == "slipped in":  # a byte the writer never wrote, before its next piece
                os.write(temp.file.fileno(), b"\x00")
            elif how == "overwritten":  # the next piece lands one byte early: the file is short
                os.lseek(temp.file.fileno(), -1, os.SEEK_CUR)
            temp.file.write(data[100_000:])
            if how == "grown":
                with open(temp.path, "ab") as other:
                    other.write(b"x")
            temp.place(len(data) + (how == "size claimed"))
    assert os.listdir(nas) == []  # neither the copy nor its temporary file


def test_a_failure_while_writing_leaves_nothing(nas):
    storage = FolderStorage(nas)
    with pytest.raises(RuntimeError):
        with storage.writing("copy.bin") as temp:
            temp.file.write(b"half")
            raise RuntimeError("the packer failed")
    assert os.listdir(nas) == []


def test_pack_into_writes_a_copy_that_unpacks_to_the_backup(nas, source):
    identity, recipient = new_key()
    codec = Codec("zstd", 3, (recipient,))
    before = sorted(os.listdir(source.parent))
    encoded, landed = pack_into(FolderStorage(nas), KEY, source, codec, None)
    stored = (nas / KEY).read_bytes()
    assert sorted(os.listdir(nas)) == [KEY]
    assert sorted(os.listdir(source.parent)) == before  # no scratch file beside the backup
    assert encoded.size == landed.size == len(stored) < encoded.plain_size
    assert encoded.sha256 == landed.sha256 == hashlib.sha256(stored).hexdigest()
    plain = source.read_bytes()
    assert encoded.plain_size == len(plain)
    assert encoded.plain_sha256 == hashlib.sha256(plain).hexdigest()
    unpacked = nas.parent / "unpacked.db"
    with open(nas / KEY, "rb") as reader, open(unpacked, "wb") as sink:
        decode(reader, sink, compressed=True, encrypted=True, identities=identity)
    assert unpacked.read_bytes() == plain


def test_pack_into_never_replaces_another_file_of_that_name(nas, source):
    _, recipient = new_key()
    (nas / KEY).write_bytes(b"someone else's file")
    with pytest.raises(ValueError, match="different file"):
        pack_into(FolderStorage(nas), KEY, source, Codec("zstd", 3, (recipient,)), None)
    assert (nas / KEY).read_bytes() == b"someone else's file"
    assert os.listdir(nas) == [KEY]
