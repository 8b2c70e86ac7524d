"""The sealed stream read back without Litestream: each file signed inside its age envelope, the
storage read as it was at the moment, only the files the restore needs downloaded, and a damaged
or planted file gone around (folder storage with chosen upload times, and real SeaweedFS)."""
import io
import os
import struct
import time

import pytest

from mission_control.errors import NotAuthentic
from mission_control.offsite.codec import AGE_MAGIC, Codec, CopyDamaged, encode
from mission_control.offsite.sealed_stream import (LtxFile, NothingToRestore, Trust,
                                                   fetch_until, late_files)
from mission_control.offsite.sealing import open_sealed, seal_file
from mission_control.offsite.storage import FolderStorage, S3Storage
from tests.support.offsite import new_key
from tests.support.offsite_catalog import new_signer
from tests.support.seaweed import SERVICE

pytest.importorskip("pyrage")
BASE = 1_800_000_000  # unix s: every stamp and upload time below is relative to it


def ltx(item, stamp_ms):
    """The bytes of an LTX file as Litestream writes it (its header, then page data)."""
    return struct.pack(">4sIIIQQq", b"LTX1", 2, 4096, 4, item.min_txid, item.max_txid,
                       stamp_ms) + b"\x00" * 60 + f"pages {item.name} ".encode() * 40


class Counting(FolderStorage):
    """A folder storage that remembers which keys were downloaded."""

    def __init__(self, root):
        super().__init__(root)
        self.opened = []

    def open(self, key, version_id=None):
        self.opened.append(key)
        return super().open(key, version_id)


class Stream:
    """A sealed stream being written into `storage`, as the sealer does."""

    def __init__(self, tmp_path, storage):
        self.identity, self.recipient = new_key()
        self.signer, self.verify = new_signer(tmp_path)
        self.trust = Trust(self.identity, self.signer.trusted())
        self.storage = storage
        self.work = tmp_path / "work"
        self.work.mkdir()

    def sealed(self, item, stamp_ms, *, signer=None, key=None):
        source = self.work / item.name
        source.write_bytes(ltx(item, stamp_ms))
        out = io.BytesIO()
        seal_file(source, out, key or item.key, (self.recipient,),
                  (signer or self.signer).private_key())
        return out.getvalue()

    def add(self, level, lo, hi, stamp_s, stored_s=None, **kw):
        """Seal and upload file `level`/`lo`-`hi` written at BASE+`stamp_s`, uploaded at
        BASE+`stored_s` (folder storage: its mtime)."""
        item = LtxFile(level, lo, hi)
        self.storage.put_bytes(item.key, self.sealed(item, int((BASE + stamp_s) * 1000), **kw))
        if stored_s is not None:
            when = BASE + stored_s
            os.utime(os.path.join(self.storage.root, item.key), (when, when))
        return item

    def plant(self, level, lo, hi, stamp_s, stored_s):
        """A plain LTX file encrypted to the public recipient: what anyone who can write to the
        bucket can add."""
        item = LtxFile(level, lo, hi)
        source = self.work / f"planted-{item.name}"
        source.write_bytes(ltx(item, int((BASE + stamp_s) * 1000)))
        out = io.BytesIO()
        encode(source, out, Codec("none", 3, (self.recipient,)))
        self.storage.put_bytes(item.key, out.getvalue())
        when = BASE + stored_s
        os.utime(os.path.join(self.storage.root, item.key), (when, when))
        return item


@pytest.fixture
def stream(tmp_path):
    root = tmp_path / "bucket"
    root.mkdir()
    return Stream(tmp_path, Counting(root))


def replica_files(replica):
    return sorted(str(p.relative_to(replica)) for p in replica.rglob("*.ltx"))


def test_each_file_is_signed_inside_its_age_envelope(stream, tmp_path):
    item = LtxFile(0, 2, 2)
    data = stream.sealed(item, 5_000)
    assert data.startswith(AGE_MAGIC)  # nothing in the bucket is readable without the identity
    out = io.BytesIO()
    open_sealed(io.BytesIO(data), out, item.key, stream.identity, stream.trust.verify_keys)
    assert out.getvalue() == ltx(item, 5_000)

    def opened(blob, key=item.key, trust=stream.trust):
        open_sealed(io.BytesIO(blob), io.BytesIO(), key, trust.identities, trust.verify_keys,
                    check_signature=trust.check_signature)

    # Planted: encrypted to the public recipient, but not signed at all.
    plain = tmp_path / "plain.ltx"
    plain.write_bytes(ltx(item, 5_000))
    unsigned = io.BytesIO()
    encode(plain, unsigned, Codec("none", 3, (stream.recipient,)))
    with pytest.raises(CopyDamaged, match="not a signed file of the stream"):
        opened(unsigned.getvalue())
    # Planted: signed, by a key the restore does not trust.
    other = new_signer(tmp_path / "work")[0]
    with pytest.raises(NotAuthentic, match="does not verify"):
        opened(stream.sealed(item, 5_000, signer=other))
    # A genuine file copied under another name.
    with pytest.raises(NotAuthentic, match="was sealed as"):
        opened(data, key=LtxFile(0, 3, 3).key)
    # --unverified skips the signature, not the rest; it reads a file sealed before files were
    # signed (a bare LTX file inside the envelope).
    loose = Trust(stream.identity, (), check_signature=False)
    opened(stream.sealed(item, 5_000, signer=other), trust=loose)
    with pytest.raises(NotAuthentic, match="was sealed as"):
        opened(data, key=LtxFile(0, 3, 3).key, trust=loose)
    legacy = io.BytesIO()
    open_sealed(io.BytesIO(unsigned.getvalue()), legacy, item.key, stream.identity, (),
                check_signature=False)
    assert legacy.getvalue() == ltx(item, 5_000)


def test_only_the_files_the_moment_needs_are_downloaded(stream, tmp_path):
    stream.add(9, 1, 1, 1, 1.5)
    for txid in range(2, 8):
        stream.add(0, txid, txid, txid, txid + 0.5)
    stream.add(9, 1, 4, 4, 4.6)
    stream.add(9, 1, 6, 6, 6.6)
    replica = tmp_path / "replica"
    stamps, past_all = fetch_until(stream.storage, stream.trust, (BASE + 2.7) * 1000, replica)
    # The one snapshot stored before the moment, then level 0 up to the first file after it.
    assert stream.storage.opened == ["ltx/9/0000000000000001-0000000000000001.ltx.age",
                                     "ltx/0/0000000000000002-0000000000000002.ltx.age",
                                     "ltx/0/0000000000000003-0000000000000003.ltx.age"]
    assert sorted(stamps) == [LtxFile(0, 2, 2), LtxFile(9, 1, 1)]
    assert not past_all
    assert replica_files(replica) == ["ltx/0/0000000000000002-0000000000000002.ltx",
                                      "ltx/0/0000000000000003-0000000000000003.ltx",
                                      "ltx/9/0000000000000001-0000000000000001.ltx"]


def test_a_planted_snapshot_is_skipped_and_an_older_one_used(stream, tmp_path):
    stream.add(9, 1, 1, 1, 1.5)
    stream.add(0, 2, 2, 2, 2.5)
    stream.add(0, 3, 3, 3, 3.5)
    planted = stream.plant(9, 1, 3, 3.2, 3.7)
    stream.add(0, 4, 4, 5, 5.5)
    skipped = {}
    replica = tmp_path / "replica"
    stamps, past_all = fetch_until(stream.storage, stream.trust, (BASE + 4) * 1000, replica,
                                   skipped)
    assert list(skipped) == [planted.key]
    assert "not a signed file" in skipped[planted.key]
    assert sorted(stamps) == [LtxFile(0, 2, 2), LtxFile(0, 3, 3), LtxFile(9, 1, 1)]
    assert not past_all  # 4-4, written after the moment, tells Litestream the moment is inside
    assert replica_files(replica) == ["ltx/0/0000000000000002-0000000000000002.ltx",
                                      "ltx/0/0000000000000003-0000000000000003.ltx",
                                      "ltx/0/0000000000000004-0000000000000004.ltx",
                                      "ltx/9/0000000000000001-0000000000000001.ltx"]


def test_a_damaged_file_another_level_covers_is_gone_around(stream, tmp_path):
    stream.add(9, 1, 1, 1, 1.5)
    stream.add(1, 2, 3, 3, 3.6)  # the compaction of 2-2 and 3-3
    planted = stream.plant(0, 2, 2, 2, 2.5)  # the level-0 file replaced by a planted one
    stream.add(0, 3, 3, 3, 3.5)
    stream.add(0, 4, 4, 4, 4.5)
    skipped = {}
    stamps, past_all = fetch_until(stream.storage, stream.trust, (BASE + 10) * 1000,
                                   tmp_path / "replica", skipped)
    assert sorted(stamps) == [LtxFile(0, 4, 4), LtxFile(1, 2, 3), LtxFile(9, 1, 1)]
    assert past_all and skipped == {}  # level 1 covered it: level 0's 2-2 was never needed
    assert planted.key not in stream.storage.opened


def test_no_complete_chain_fails_naming_the_file(stream, tmp_path):
    stream.add(9, 1, 1, 1, 1.5)
    planted = stream.plant(0, 2, 2, 2, 2.5)
    stream.add(0, 3, 3, 3, 3.5)
    skipped = {}
    with pytest.raises(NothingToRestore, match=r"no complete chain.*0000000000000002-0000000000000002"):
        fetch_until(stream.storage, stream.trust, (BASE + 10) * 1000, tmp_path / "replica",
                    skipped)
    assert list(skipped) == [planted.key]


@pytest.mark.slow
def test_an_overwrite_or_delete_after_the_moment_changes_nothing(seaweed, tmp_path):
    bucket = seaweed.bucket(lock=False, versioned=True)
    storage = S3Storage(seaweed.client(SERVICE), bucket, "pitr")
    stream = Stream(tmp_path, storage)
    now = time.time() - BASE
    files = [stream.add(9, 1, 1, now - 3), stream.add(0, 2, 2, now - 2),
             stream.add(0, 3, 3, now - 1)]
    time.sleep(1.5)  # SeaweedFS keeps upload times to the second
    moment = time.time() * 1000
    time.sleep(1.5)
    # Ransomware with the service's credentials: one file overwritten with a planted one,
    # another deleted (a delete marker).
    stream.storage.put_bytes(files[2].key, stream.sealed(files[2], int(moment) - 1000,
                                                         signer=new_signer(tmp_path / "work")[0]))
    stream.storage.delete(files[1].key)
    assert [o.key for o in storage.list()] == [files[2].key, files[0].key]
    skipped = {}
    stamps, past_all = fetch_until(storage, stream.trust, moment, tmp_path / "replica", skipped)
    assert sorted(stamps) == sorted(files) and past_all and skipped == {}


def test_a_file_first_stored_long_after_the_moment_is_ignored(stream, tmp_path):
    stream.add(9, 1, 1, 1, 1.5)
    stream.add(0, 2, 2, 2, 2.5)
    # Signed with the service's key (a file of another stream, say) and stamped before the
    # moment, but first stored ten minutes after it: it cannot be what the moment held.
    late = stream.add(0, 3, 3, 2.9, 600)
    late_snapshot = stream.add(9, 1, 3, 2.9, 601)
    skipped = {}
    replica = tmp_path / "replica"
    stamps, past_all = fetch_until(stream.storage, stream.trust, (BASE + 3) * 1000, replica,
                                   skipped)
    assert sorted(stamps) == [LtxFile(0, 2, 2), LtxFile(9, 1, 1)] and past_all
    assert replica_files(replica) == ["ltx/0/0000000000000002-0000000000000002.ltx",
                                      "ltx/9/0000000000000001-0000000000000001.ltx"]
    # Never silently: each is named, with how late it was stored.
    assert sorted(skipped) == [late.key, late_snapshot.key]
    assert skipped[late.key].startswith("first stored 597 s after the moment")
    assert skipped[late_snapshot.key].startswith("first stored 598 s after the moment")
    # Stored within the upload lag (the last seconds' files are uploaded just after): used.
    stream.storage.delete(late.key)
    stream.add(0, 3, 3, 2.9, 40)
    stamps, _ = fetch_until(stream.storage, stream.trust, (BASE + 3) * 1000,
                            tmp_path / "again")
    assert LtxFile(0, 3, 3) in stamps


def test_an_unreadable_file_is_stepped_past_in_its_level(stream, tmp_path):
    stream.add(9, 1, 1, 1, 1.5)
    planted = stream.plant(0, 2, 2, 2, 2.4)  # sorts before the real 2-3 (same min txid)
    stream.add(0, 2, 3, 3, 3.5)
    stream.add(0, 4, 4, 4, 4.5)
    skipped = {}
    stamps, past_all = fetch_until(stream.storage, stream.trust, (BASE + 10) * 1000,
                                   tmp_path / "replica", skipped)
    assert sorted(stamps) == [LtxFile(0, 2, 3), LtxFile(0, 4, 4), LtxFile(9, 1, 1)]
    assert past_all and list(skipped) == [planted.key]


def test_files_uploaded_late_are_named_and_a_later_trust_limit_reads_them(stream, tmp_path):
    # The storage was down from 1.5 s to 200 s: the files written meanwhile went up at 200 s.
    stream.add(9, 1, 1, 1, 1.2)
    stream.add(0, 2, 2, 1.4, 1.5)
    late = stream.add(0, 3, 3, 2.5, 200)
    stream.add(0, 4, 4, 5, 200)  # after the moment: not the restore's concern
    stream.add(0, 5, 5, 300, 300)
    moment = (BASE + 3) * 1000
    skipped = {}
    stamps, past_all = fetch_until(stream.storage, stream.trust, moment, tmp_path / "a",
                                   skipped)
    assert sorted(stamps) == [LtxFile(0, 2, 2), LtxFile(9, 1, 1)]
    assert list(skipped) == [late.key]
    assert skipped[late.key].startswith("first stored 197 s after the moment")
    assert "--as-of" in skipped[late.key]
    assert late_files(skipped) == [late.key]
    # Trusting what was stored by 250 s (recover --at ... --as-of ...): the moment is reached.
    skipped = {}
    stamps, past_all = fetch_until(stream.storage, stream.trust, moment, tmp_path / "b",
                                   skipped, stored_by_ms=(BASE + 250) * 1000)
    assert sorted(stamps) == [LtxFile(0, 2, 2), LtxFile(0, 3, 3), LtxFile(9, 1, 1)]
    assert not past_all and skipped == {}


def test_a_first_snapshot_uploaded_late_is_named_when_nothing_can_be_restored(stream,
                                                                              tmp_path):
    snapshot = stream.add(9, 1, 1, 1, 400)  # a big first snapshot: minutes to upload
    stream.add(0, 2, 2, 2, 400)
    skipped = {}
    with pytest.raises(NothingToRestore, match="first stored 398 s after the moment"):
        fetch_until(stream.storage, stream.trust, (BASE + 2) * 1000, tmp_path / "replica",
                    skipped)
    assert list(skipped) == [snapshot.key]


def test_a_later_snapshot_is_not_downloaded_to_tell_it_is_after_the_moment(stream, tmp_path):
    stream.add(9, 1, 1, 1, 1.5)
    stream.add(0, 2, 2, 2, 2.5)
    stream.add(0, 3, 3, 5, 5.5)  # written after the moment: the restore stops before it
    daily = stream.add(9, 1, 3, 5, 3600)  # the next snapshot, an hour later
    skipped = {}
    stamps, past_all = fetch_until(stream.storage, stream.trust, (BASE + 3) * 1000,
                                   tmp_path / "a", skipped)
    assert sorted(stamps) == [LtxFile(0, 2, 2), LtxFile(9, 1, 1)] and not past_all
    assert skipped == {} and daily.key not in stream.storage.opened
    # The database idle after the moment: its next write and snapshot both stored late.
    stream.storage.delete(LtxFile(0, 3, 3).key)
    stream.add(0, 3, 3, 500, 500)
    stream.storage.opened.clear()
    stamps, past_all = fetch_until(stream.storage, stream.trust, (BASE + 3) * 1000,
                                   tmp_path / "b", skipped)
    assert sorted(stamps) == [LtxFile(0, 2, 2), LtxFile(9, 1, 1)] and past_all
    assert skipped == {} and daily.key not in stream.storage.opened
