"""Incremental copies (issue 24, the format): page hashes, delta packs and manifests, rebuilding a chain."""
import hashlib
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mission_control.offsite import delta as delta_module
from mission_control.offsite.delta import (SQLITE_MAGIC, DeltaError, PageHashes, changed_pages,
                                           load_hashes, page_hashes, read_page_size, save_hashes,
                                           write_delta, write_full)
from mission_control.offsite.reassembly import CopyNotFound, rebuild
from tests.support.offsite import damage, new_key

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")

SCRIPT = Path(sys.executable).parent / "mission-control-reassemble"


def name_of(i):
    return f"mc-backup-2026-01-01_00-00-{i:02d}.db"


def snapshot(db, path):
    """A consistent copy of the live database `db` at `path`, as a backup is made."""
    with sqlite3.connect(path) as dst:
        db.backup(dst)
    dst.close()


def live_db(path, rows=3000):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", ((i, f"row {i} " * 20) for i in range(rows)))
    db.commit()
    return db


#: What happens to the live database before each copy of the chain after the first.
CHANGES = [
    "UPDATE t SET body = 'changed a' WHERE id IN (5, 1500)",
    "UPDATE t SET body = 'changed b' WHERE id = 2999",
    None,  # nothing changed
    "INSERT INTO t SELECT id + 3000, body FROM t WHERE id < 400",  # the file grows
    "UPDATE t SET body = 'changed c' WHERE id % 997 = 0",
    "DELETE FROM t WHERE id >= 2000",  # frees pages...
    "VACUUM",  # ...and the file shrinks
    "UPDATE t SET body = 'changed d' WHERE id = 7",
    "CREATE INDEX t_body ON t (body)",
]


@pytest.fixture
def chain(tmp_path):
    """A real database copied 10 times into `local/`, and its chain (full + 9 deltas) in `remote/`."""
    identity, recipient = new_key()
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    db = live_db(tmp_path / "live.db")
    snapshot(db, local / name_of(0))
    write_full(local / name_of(0), name_of(0), remote, recipients=(recipient,))
    parent_hashes = page_hashes(local / name_of(0))
    deltas = []
    for i, change in enumerate(CHANGES, start=1):
        if change:
            db.execute(change)
            db.commit()
        snapshot(db, local / name_of(i))
        delta = write_delta(local / name_of(i), name_of(i), name_of(i - 1), parent_hashes, remote,
                            recipients=(recipient,))
        deltas.append(delta)
        parent_hashes = delta.hashes
    db.close()
    return identity, recipient, local, remote, deltas


def test_every_copy_of_a_chain_rebuilds_byte_identical(chain, tmp_path):
    identity, _, local, remote, deltas = chain
    for i in range(len(CHANGES) + 1):
        out = tmp_path / f"out-{i}.db"
        done = rebuild(remote, name_of(i), out, identity)
        assert out.read_bytes() == (local / name_of(i)).read_bytes(), name_of(i)
        assert len(done.objects) >= i + 1  # the full copy and every manifest down to it
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    full_size = (remote / (name_of(0) + ".zst.age")).stat().st_size
    small = deltas[0]  # two rows updated: a handful of pages, far less than a full copy
    assert 1 <= small.pages <= 6 and small.size < full_size / 4
    assert deltas[2].pages == 0 and deltas[2].pack is None
    assert deltas[6].hashes.size < deltas[5].hashes.size  # VACUUM shrank it; rebuilt above


def test_nothing_changed_gives_a_manifest_of_a_few_hundred_bytes(tmp_path):
    _, recipient = new_key()
    db = live_db(tmp_path / "live.db")
    snapshot(db, tmp_path / name_of(0))
    snapshot(db, tmp_path / name_of(1))
    db.close()
    remote = tmp_path / "remote"
    remote.mkdir()
    delta = write_delta(tmp_path / name_of(1), name_of(1), name_of(0),
                        page_hashes(tmp_path / name_of(0)), remote, recipients=(recipient,))
    assert delta.pack is None and delta.pages == 0
    assert [p.name for p in remote.iterdir()] == [name_of(1) + ".delta.zst.age"]
    print(f"unchanged copy: manifest of {delta.manifest.size} bytes (encrypted)")
    assert delta.manifest.size == (remote / delta.manifest.name).stat().st_size < 600


@pytest.mark.parametrize("encrypted", [True, False])
@pytest.mark.parametrize("target", ["pack", "manifest", "full"])
def test_a_flipped_byte_is_caught_naming_the_object(tmp_path, target, encrypted):
    identity, recipient = new_key()
    recipients = (recipient,) if encrypted else ()
    remote = tmp_path / "remote"
    remote.mkdir()
    db = live_db(tmp_path / "live.db")
    snapshot(db, tmp_path / name_of(0))
    db.execute("UPDATE t SET body = 'x' WHERE id IN (1, 2000)")
    db.commit()
    snapshot(db, tmp_path / name_of(1))
    db.close()
    full = write_full(tmp_path / name_of(0), name_of(0), remote, recipients=recipients)
    delta = write_delta(tmp_path / name_of(1), name_of(1), name_of(0),
                        page_hashes(tmp_path / name_of(0)), remote, recipients=recipients)
    victim = {"pack": delta.pack, "manifest": delta.manifest, "full": full}[target].name
    damage(remote / victim, "flipped")
    out = tmp_path / "out" / "rebuilt.db"
    out.parent.mkdir()
    with pytest.raises(DeltaError) as caught:
        rebuild(remote, name_of(1), out, identity if encrypted else "")
    assert victim in str(caught.value) and str(tmp_path) not in str(caught.value)
    assert list(out.parent.iterdir()) == []  # no output, no temporary file left


def test_a_missing_parent_is_named(chain, tmp_path):
    identity, _, _, remote, _ = chain
    (remote / (name_of(3) + ".delta.zst.age")).unlink()
    with pytest.raises(CopyNotFound, match=f"no copy named {name_of(3)} .*needed by {name_of(5)}"):
        rebuild(remote, name_of(5), tmp_path / "out.db", identity)
    assert not (tmp_path / "out.db").exists()
    rebuild(remote, name_of(2), tmp_path / "out.db", identity)  # the chain before it still works


def test_a_manifest_under_another_copys_name_is_refused(chain, tmp_path):
    identity, _, _, remote, _ = chain
    mine, other = (remote / (name_of(i) + ".delta.zst.age") for i in (4, 5))
    other.unlink()
    shutil.copy(mine, other)  # age does not bind the object's name; the manifest does
    with pytest.raises(DeltaError, match=f"{other.name} is not a valid manifest: it names another"):
        rebuild(remote, name_of(7), tmp_path / "out.db", identity)
    assert not (tmp_path / "out.db").exists()


def test_page_size_comes_from_the_header_and_a_change_of_it_is_refused(tmp_path):
    small, big = tmp_path / "small.db", tmp_path / "big.db"
    for path, size in ((small, 4096), (big, 8192)):
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA page_size = {size}")
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.close()
    assert read_page_size(big) == 8192
    hashes = page_hashes(big)
    assert hashes.page_size == 8192 and len(hashes) * 8192 == big.stat().st_size
    with pytest.raises(DeltaError, match="page size changed"):
        changed_pages(big, page_hashes(small))
    (tmp_path / "text.db").write_text("not a database" * 100)
    with pytest.raises(DeltaError, match="not an SQLite database"):
        page_hashes(tmp_path / "text.db")


def test_objects_are_written_once(chain):
    _, recipient, local, remote, _ = chain
    before = (remote / (name_of(0) + ".zst.age")).read_bytes()
    with pytest.raises(DeltaError, match="already exists"):
        write_full(local / name_of(0), name_of(0), remote, recipients=(recipient,))
    assert (remote / (name_of(0) + ".zst.age")).read_bytes() == before
    assert not [p for p in remote.iterdir() if p.name.startswith(".")]


def run_script(*args):
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_the_console_script_rebuilds_a_copy(chain, tmp_path):
    identity, _, local, remote, _ = chain
    key = tmp_path / "key.txt"
    key.write_text(f"# created: test\n{identity}\n")
    out = tmp_path / "rebuilt.db"
    done = run_script("--identity", key, "--from", remote, name_of(8), "-o", out)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (local / name_of(8)).read_bytes()
    assert f"rebuilt {name_of(8)}" in done.stdout
    again = run_script("--identity", key, "--from", remote, name_of(8), "-o", out)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert run_script("--from", remote, name_of(8)).returncode == 2  # no -o
    damage(remote / (name_of(7) + ".delta.zst.age"), "flipped")
    bad = run_script("--identity", key, "--from", remote, name_of(8), "-o", tmp_path / "b.db")
    assert bad.returncode == 1 and name_of(7) + ".delta.zst.age" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "b.db").exists()
    missing = run_script("--identity", key, "--from", remote, name_of(42), "-o", tmp_path / "c.db")
    assert missing.returncode == 1 and f"no copy named {name_of(42)}" in missing.stderr


def test_the_script_needs_only_the_standard_library_and_the_extra():
    code = ("import sys, mission_control.offsite.reassemble as r; r.main.__call__; "
            "import mission_control.offsite.reassembly; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    for module in ("croniter", "cron_descriptor", "werkzeug", "waitress", "cryptography",
                   "jsonschema", "boto3"):
        assert module not in loaded


@pytest.mark.skipif(not (os.path.exists("/usr/bin/age") and shutil.which("zstd")),
                    reason="Debian's age and zstd commands are not installed")
def test_the_full_copy_of_a_chain_is_standard_age_and_zstd(chain, tmp_path):
    identity, _, local, remote, _ = chain
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    plain = subprocess.run(
        f"/usr/bin/age -d -i '{key}' '{remote / (name_of(0) + '.zst.age')}' | zstd -d",
        shell=True, capture_output=True, check=True).stdout
    assert plain == (local / name_of(0)).read_bytes()


def test_a_page_changed_while_packing_is_refused(tmp_path):
    from mission_control.offsite.delta import _PagesReader
    db = live_db(tmp_path / "live.db")
    snapshot(db, tmp_path / "a.db")
    db.execute("UPDATE t SET body = 'moved on' WHERE id = 1")
    db.commit()
    snapshot(db, tmp_path / "b.db")
    db.close()
    stale = page_hashes(tmp_path / "a.db")
    changed = changed_pages(tmp_path / "b.db", stale).pages
    with open(tmp_path / "b.db", "rb") as raw:
        assert len(_PagesReader(raw, (1,), page_hashes(tmp_path / "b.db")).read()) == 4096
        with pytest.raises(DeltaError, match=f"page {changed[0]} changed while it was packed"):
            _PagesReader(raw, changed, stale).read()


def plain_hashes(data, page_size):
    """The page hashes of `data`, the obvious way (one thread, one page at a time)."""
    digests = b"".join(hashlib.blake2b(data[at:at + page_size], digest_size=16).digest()
                       for at in range(0, len(data), page_size))
    return PageHashes(page_size, digests, len(data), hashlib.sha256(data).hexdigest())


def pages_file(path, page_size, pages):
    """A file of `pages` random pages with an SQLite header naming `page_size`."""
    data = bytearray(os.urandom(page_size * pages))
    data[:18] = SQLITE_MAGIC + struct.pack(">H", 1 if page_size == 65536 else page_size)
    path.write_bytes(bytes(data))
    return data


@pytest.mark.parametrize("page_size,pages", [(512, 1), (512, 97), (4096, 33), (65536, 7)])
def test_threaded_hashing_equals_a_plain_single_thread_hash(tmp_path, monkeypatch, page_size,
                                                           pages):
    # Reads of 3 pages (or 1 of 64 KiB): many chunks, the last one short.
    monkeypatch.setattr(delta_module, "READ_SIZE", 3 * 4096 if page_size < 65536 else 1)
    data = pages_file(tmp_path / "a.db", page_size, pages)
    assert page_hashes(tmp_path / "a.db") == plain_hashes(bytes(data), page_size)
    # A child: some pages changed, two added at the end; and one that shrank.
    changed = sorted({1, pages} | {n for n in range(2, pages, 5)})
    for number in changed:
        data[(number - 1) * page_size + 200] ^= 0xFF
    data += os.urandom(2 * page_size)
    (tmp_path / "b.db").write_bytes(bytes(data))
    found = changed_pages(tmp_path / "b.db", page_hashes(tmp_path / "a.db"))
    assert found.pages == tuple(changed + [pages + 1, pages + 2])
    assert found.hashes == plain_hashes(bytes(data), page_size)
    shrunk = changed_pages(tmp_path / "a.db", found.hashes)
    assert shrunk.pages == tuple(changed) and len(shrunk.hashes) == pages


def test_a_file_of_part_of_a_page_is_refused(tmp_path):
    data = pages_file(tmp_path / "a.db", 4096, 3)
    (tmp_path / "a.db").write_bytes(bytes(data) + b"x")
    with pytest.raises(DeltaError, match="a.db is not a whole number of pages"):
        page_hashes(tmp_path / "a.db")


def test_saved_hashes_load_back_equal(tmp_path):
    db = live_db(tmp_path / "live.db")
    db.close()
    hashes = page_hashes(tmp_path / "live.db")
    save_hashes(tmp_path / "live.hashes", hashes)
    assert load_hashes(tmp_path / "live.hashes") == hashes
    save_hashes(tmp_path / "live.hashes", plain_hashes(b"", 4096))  # replaced; an empty file too
    assert load_hashes(tmp_path / "live.hashes") == plain_hashes(b"", 4096)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.db", "live.hashes"]


def resealed(data):
    """`data` (a page-hash file) with its checksum made right again."""
    return data[:-32] + hashlib.sha256(data[:-32]).digest()


DAMAGES = {
    "flipped digest": lambda d: d[:60] + bytes([d[60] ^ 1]) + d[61:],
    "flipped checksum": lambda d: d[:-1] + bytes([d[-1] ^ 1]),
    "truncated": lambda d: d[:-20],
    "cut to the header": lambda d: d[:40],
    "extended": lambda d: d + b"\x00" * 16,
    "a digest more, resealed": lambda d: resealed(d[:-32] + b"\x00" * 16 + d[-32:]),
    "another magic": lambda d: b"X" + d[1:],
    "another version": lambda d: resealed(d[:12] + b"\x02" + d[13:]),
    "another page size, resealed": lambda d: resealed(d[:16] + struct.pack(">I", 1000) + d[20:]),
    "empty": lambda d: b"",
}


@pytest.mark.parametrize("how", list(DAMAGES))
def test_a_damaged_hash_file_is_refused(tmp_path, how):
    data = pages_file(tmp_path / "a.db", 4096, 5)
    save_hashes(tmp_path / "a.hashes", plain_hashes(bytes(data), 4096))
    (tmp_path / "a.hashes").write_bytes(DAMAGES[how]((tmp_path / "a.hashes").read_bytes()))
    with pytest.raises(DeltaError, match="^a.hashes (is not a page-hash file|is damaged|is a "
                                         "page-hash file of another version)"):
        load_hashes(tmp_path / "a.hashes")


@pytest.mark.parametrize("misfit", ["shorter", "page size"])
def test_a_full_copy_that_does_not_fit_its_chain_is_refused(tmp_path, misfit):
    """The full copy under the parent's name is not the parent the delta was made against: too
    short (a page the chain needs is neither in it nor in a pack), or of another page size."""
    identity, recipient = new_key()
    remote = tmp_path / "remote"
    remote.mkdir()
    child = pages_file(tmp_path / "child.db", 4096, 6)
    if misfit == "shorter":
        (tmp_path / "full.db").write_bytes(bytes(child[:5 * 4096]))
    else:
        pages_file(tmp_path / "full.db", 8192, 3)
    write_full(tmp_path / "full.db", name_of(0), remote, recipients=(recipient,))
    # Made against the child's own hashes: no page changed, so none is in a pack.
    delta = write_delta(tmp_path / "child.db", name_of(1), name_of(0),
                        page_hashes(tmp_path / "child.db"), remote, recipients=(recipient,))
    assert delta.pack is None
    threads = threading.active_count()
    out = tmp_path / "out" / "rebuilt.db"
    out.parent.mkdir()
    why = "is shorter than its chain needs" if misfit == "shorter" else "has another page size"
    with pytest.raises(DeltaError, match=f"^{name_of(0)}.zst.age {why}"):
        rebuild(remote, name_of(1), out, identity)
    assert list(out.parent.iterdir()) == [] and threading.active_count() == threads
