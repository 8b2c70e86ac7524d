"""Settings that cannot work are refused at once, naming the extra to install: zstd or age
recipients without zstandard/pyrage, an S3 bucket without boto3, point in time without Litestream.

The module is made unimportable in this process (None in `sys.modules`, which makes `import`
raise ImportError); the request goes through the real WSGI app and the real CLI.
"""
import importlib
import io
import sys
import sysconfig

import pytest

from mission_control.cli import main

from tests.support.accounts import logged_in_client
from tests.support.offsite import new_key

CRYPT = "pip install 'mission-control-backup[offsite-crypt]'"
S3 = "pip install 'mission-control-backup[s3]'"
PITR = "pip install 'mission-control-backup[pitr]'"

CASES = [
    ("offsite.dir.compress", "zstd", "zstandard", CRYPT),
    ("offsite.s3.compress", "zstd", "zstandard", CRYPT),
    ("offsite.dir.age_recipients", "recipient", "pyrage", CRYPT),
    ("offsite.s3.age_recipients", "recipient", "pyrage", CRYPT),
    ("offsite.s3.bucket", "backups", "boto3", S3),
]


def stored(mc):
    return {row["key"]: row["value"] for row in mc.db.query("SELECT key, value FROM settings")}


def change(key, value):
    # With a valid change beside it: all or nothing, so neither is written.
    return {key: new_key()[1] if value == "recipient" else value,
            "general.site_name": "Ops"}


@pytest.mark.parametrize("key, value, module, extra", CASES)
def test_a_setting_whose_module_is_missing_is_a_400_naming_the_extra(make_mc, monkeypatch,
                                                                     key, value, module, extra):
    mc = make_mc()
    client = logged_in_client(mc)
    body = {"settings": change(key, value)}  # the key pair made while pyrage is there
    installed = importlib.import_module(module)
    monkeypatch.setitem(sys.modules, module, None)
    answer = client.put("/api/settings", json=body)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"] == "Validation failed"
    [problem] = answer.json["details"]
    assert problem.startswith(f"{key}: ") and f"{module}, which is not installed: {extra}" \
        in problem, problem
    assert stored(mc) == {}
    assert mc.audit_store.query(action="settings_update")[0] == []
    monkeypatch.setitem(sys.modules, module, installed)  # back: the same change is taken
    assert client.put("/api/settings", json=body).status_code == 200
    assert set(stored(mc)) == {key, "general.site_name"}


@pytest.mark.parametrize("key, value", [("offsite.dir.compress", "none"),
                                        ("offsite.dir.age_recipients", ""),
                                        ("offsite.s3.bucket", "")])
def test_turning_the_need_off_needs_no_module(admin_client, monkeypatch, key, value):
    for module in ("zstandard", "pyrage", "boto3"):
        monkeypatch.setitem(sys.modules, module, None)
    answer = admin_client.put("/api/settings", json={"settings": {key: value}})
    assert answer.status_code == 200, answer.json


def test_the_cli_exits_2_with_the_same_message_and_writes_nothing(make_mc, monkeypatch,
                                                                   capsys):
    mc = make_mc()
    monkeypatch.setitem(sys.modules, "zstandard", None)
    out = io.StringIO()
    code = main(["settings", "set", "offsite.dir.compress=zstd", "general.site_name=Ops",
                 "--data-dir", str(mc.config.data_dir)], out=out)
    err = capsys.readouterr().err
    assert code == 2, (out.getvalue(), err)
    assert f"offsite.dir.compress: zstd compression needs zstandard, which is not installed: " \
           f"{CRYPT}" in err
    assert "Traceback" not in err
    assert stored(mc) == {}


def test_point_in_time_without_litestream_is_refused_naming_the_extra(make_mc, monkeypatch,
                                                                       tmp_path):
    # No litestream beside this Python's scripts (the [pitr] extra is not installed).
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    real = sysconfig.get_path
    monkeypatch.setattr(sysconfig, "get_path",
                        lambda name, *a, **kw: str(scripts) if name == "scripts" else
                        real(name, *a, **kw))
    mc = make_mc()
    client = logged_in_client(mc)
    answer = client.put("/api/settings", json={"settings": {
        "pitr.enabled": True, "pitr.replica_url": f"file://{tmp_path}/replica"}})
    assert answer.status_code == 400, answer.json
    assert answer.json["details"] == [
        "pitr.enabled: point-in-time protection needs Litestream, which is not installed: "
        f"{PITR}"]
    assert stored(mc) == {}
    # The replica alone, protection left off, is fine.
    answer = client.put("/api/settings", json={"settings": {
        "pitr.replica_url": f"file://{tmp_path}/replica"}})
    assert answer.status_code == 200, answer.json


def test_point_in_time_with_a_wrong_mc_litestream_bin_names_it(make_mc, tmp_path):
    mc = make_mc(litestream_bin=str(tmp_path / "no-such-litestream"))
    client = logged_in_client(mc)
    answer = client.put("/api/settings", json={"settings": {"pitr.enabled": "true"}})
    assert answer.status_code == 400, answer.json
    [problem] = answer.json["details"]
    assert problem.startswith("pitr.enabled: MC_LITESTREAM_BIN names no executable Litestream")
    assert PITR in problem and str(tmp_path) not in problem  # no host path in a response
    assert stored(mc) == {}
