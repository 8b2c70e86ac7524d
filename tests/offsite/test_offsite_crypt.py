"""Off-site copies compressed (zstd) and encrypted (age): to a real folder and to moto's S3 server."""
import hashlib
import shutil
import subprocess

import pytest

from mission_control import MANIFEST_SUFFIX
from mission_control.offsite.codec import decode
from mission_control.offsite.codec import parse_remote_name
from tests.support.offsite import PACKINGS, expected_name, new_key, packing

pytest.importorskip("pyrage")
pytest.importorskip("zstandard")


def unpack(path, identity):
    """The plain bytes of the copy at `path`, unpacked as its name says."""
    _, compressed, encrypted = parse_remote_name(path.name)
    plain = path.parent / "unpacked.db"
    with open(path, "rb") as reader, open(plain, "wb") as sink:
        decode(reader, sink, compressed=compressed, encrypted=encrypted, identities=identity)
    data = plain.read_bytes()
    plain.unlink()
    return data


@pytest.mark.parametrize("compress,encrypt", PACKINGS)
def test_folder_copies_round_trip_in_every_packing(mc, tmp_path, compress, encrypt):
    identity, recipient = new_key()
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), **packing("dir", compress, encrypt,
                                                                recipient)}, actor="test")
    made = mc.backups.create(actor="test")
    remote = nas / expected_name(made.name, compress, encrypt)
    assert sorted(p.name for p in nas.iterdir()) == ["catalog", remote.name,
                                                     remote.name + MANIFEST_SUFFIX]
    assert [p.name for p in (nas / "catalog").iterdir()] == \
        [remote.name + ".json" + (".age" if encrypt else "")]
    stored = remote.read_bytes()
    assert (stored == made.path.read_bytes()) == (compress == "none" and not encrypt)
    assert stored.startswith(b"age-encryption.org/v1\n") == encrypt
    assert unpack(remote, identity) == made.path.read_bytes()
    result = mc.offsite.get("dir")
    assert result["ok"] is True and result["stored_size"] == len(stored)
    assert result["detail"]["sha256"] == hashlib.sha256(stored).hexdigest()
    assert result["detail"]["plain_sha256"] == hashlib.sha256(made.path.read_bytes()).hexdigest()
    assert result["ratio"] == round(len(stored) / made.size, 4)
    if compress == "zstd":
        assert result["ratio"] < 0.5  # a young database is mostly empty pages


@pytest.mark.slow  # moto's S3 server is a real process: not in the quick lane
@pytest.mark.parametrize("compress,encrypt", PACKINGS)
def test_bucket_copies_round_trip_in_every_packing(mc, tmp_path, s3, s3_server, bucket, compress,
                                                   encrypt):
    identity, recipient = new_key()
    mc.settings.update({"offsite.s3.bucket": bucket, "offsite.s3.endpoint_url": s3_server.url,
                        "offsite.s3.region": "us-east-1",
                        **packing("s3", compress, encrypt, recipient)}, actor="test")
    made = mc.backups.create(actor="test")
    key = f"mission-control/{expected_name(made.name, compress, encrypt)}"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    entry = f"mission-control/catalog/{key.rsplit('/', 1)[1]}.json" + (".age" if encrypt else "")
    assert listed == [entry, key, key + MANIFEST_SUFFIX]
    landed = tmp_path / key.rsplit("/", 1)[1]
    landed.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert unpack(landed, identity) == made.path.read_bytes()
    result = mc.offsite.get("s3")
    assert result["ok"] is True, result["message"]
    assert result["detail"]["sha256"] == hashlib.sha256(landed.read_bytes()).hexdigest()
    assert not [p for p in mc.backups.dir.iterdir() if p.name.startswith(".mc-offsite")]


@pytest.mark.skipif(not (shutil.which("age") and shutil.which("zstd") and
                         shutil.which("age-keygen")),
                    reason="Debian's age and zstd commands are not installed (.ci/run installs them)")
def test_admins_recover_by_hand_with_age_and_zstd(mc, tmp_path):
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.compress": "zstd",
                        "offsite.dir.age_recipients": f"{new_key()[1]},\n{recipient}"},
                       actor="test")
    made = mc.backups.create(actor="test")
    copy = nas / f"{made.name}.zst.age"
    recovered = tmp_path / "f.db"
    subprocess.run(f"age -d -i {key} {copy} | zstd -d > {recovered}", shell=True, check=True,
                   capture_output=True)
    assert recovered.read_bytes() == made.path.read_bytes()


def test_invalid_settings_are_refused_naming_the_setting(admin_client, mc):
    _, recipient = new_key()
    bad = admin_client.put("/api/settings", json={"settings": {
        "offsite.s3.age_recipients": f"{recipient} age1notakey",
        "offsite.dir.compress": "gzip", "offsite.dir.zstd_level": 30}})
    assert bad.status_code == 400
    assert sorted(d.split(":")[0] for d in bad.json["details"]) == [
        "offsite.dir.compress", "offsite.dir.zstd_level", "offsite.s3.age_recipients"]
    assert mc.settings.get("offsite.s3.age_recipients") == ""
    good = admin_client.put("/api/settings", json={"settings": {
        "offsite.s3.age_recipients": f" {recipient},\n{recipient} "}})
    assert good.status_code == 200
    assert mc.settings.get("offsite.s3.age_recipients") == f"{recipient} {recipient}"
    identity = admin_client.put("/api/settings", json={"settings": {
        "offsite.age_identity": "AGE-SECRET-KEY-1NOPE"}})
    assert identity.status_code == 400 and "offsite.age_identity" in identity.json["details"][0]
    assert "NOPE" not in identity.get_data(as_text=True)


def test_offsite_listing_shows_stored_size_and_ratio(admin_client, mc, tmp_path):
    nas = tmp_path / "nas"
    nas.mkdir()
    mc.settings.update({"offsite.dir.path": str(nas), "offsite.dir.compress": "zstd"},
                       actor="test")
    made = mc.backups.create(actor="test")
    [target] = admin_client.get("/api/offsite").json["targets"]
    stored = (nas / f"{made.name}.zst").stat().st_size
    assert target["stored_size"] == stored and target["ratio"] == round(stored / made.size, 4)
    assert (target["kind"], target["uploaded_bytes"], target["chain_length"]) == ("full", stored, 0)
    assert target["detail"]["compressed"] is True and target["detail"]["encrypted"] is False
