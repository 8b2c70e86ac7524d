"""`mission-control backup verify|restore|download`."""
import hashlib
import io
import json
import urllib.request

from mission_control.cli import main

from tests.support.backup_files import add_tasks, flip_page, titles


def cli(mc, *argv, stdin=""):
    out = io.StringIO()
    code = main([*argv, "--data-dir", str(mc.config.data_dir)], out=out,
                stdin=io.StringIO(stdin))
    return code, out.getvalue()


def test_verify(mc, capsys):
    add_tasks(mc, *["x" * 300 for _ in range(30)])
    name = mc.backups.create("test").name
    code, out = cli(mc, "backup", "verify", name)
    assert code == 0 and f"{name}: OK" in out
    code, out = cli(mc, "backup", "verify", name, "--json")
    assert json.loads(out)["ok"] is True
    flip_page(mc.backups.dir / name)
    code, out = cli(mc, "backup", "verify", name)
    assert code == 1 and "FAILED" in out and "integrity check failed" in out
    assert cli(mc, "backup", "verify", "missing.db")[0] == 3  # not found
    assert "no backup named 'missing.db'" in capsys.readouterr().err


def test_download(mc, tmp_path, capsys):
    name = mc.backups.create("test").name
    data = (mc.backups.dir / name).read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out = cli(mc, "backup", "download", name, "--output", str(out_dir))
    assert code == 0 and hashlib.sha256(data).hexdigest() in out
    assert (out_dir / name).read_bytes() == data
    assert cli(mc, "backup", "download", name, "-o", str(out_dir))[0] == 2
    assert "exists" in capsys.readouterr().err
    assert cli(mc, "backup", "download", name, "-o", str(out_dir), "--force")[0] == 0
    assert [p.name for p in out_dir.iterdir()] == [name]  # no partial file left
    assert mc.audit_store.query(action="backup_download")[1] == 2


def test_restore_asks_first(mc):
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    add_tasks(mc, "new")
    code, out = cli(mc, "backup", "restore", name, stdin="n\n")
    assert code == 1 and "not restored" in out and titles(mc) == ["old", "new"]
    code, out = cli(mc, "backup", "restore", name, stdin="y\n")
    assert code == 0 and "safety backup: pre-restore-" in out and titles(mc) == ["old"]


def test_restore_while_the_service_runs(mc, users, live_server):
    add_tasks(mc, "old")
    name = mc.backups.create("test").name
    add_tasks(mc, "new")
    code, out = cli(mc, "backup", "restore", name, "--yes")
    assert code == 0, out
    assert "users changed" not in out  # the same users: no word about logging in again
    assert titles(mc) == ["old"]  # the running service's connections see the restored data
    login = urllib.request.Request(f"{live_server}/api/auth/login", method="POST",
                                   data=b'{"username":"alice","password":"correct-horse-battery"}')
    cookie = urllib.request.urlopen(login).headers["Set-Cookie"].split(";")[0]
    listing = urllib.request.urlopen(urllib.request.Request(
        f"{live_server}/api/backup", headers={"Cookie": cookie}))
    names = [b["name"] for b in json.load(listing)["backups"]]
    assert any(n.startswith("pre-restore-") for n in names)


def test_restore_refuses_a_corrupt_backup(mc, capsys):
    add_tasks(mc, *["x" * 300 for _ in range(30)])
    name = mc.backups.create("test").name
    flip_page(mc.backups.dir / name)
    code, _ = cli(mc, "backup", "restore", name, "--yes")
    err = capsys.readouterr().err
    assert code == 1 and "Backup failed verification" in err and "integrity" in err
