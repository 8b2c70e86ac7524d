"""A real Litestream replica of a database, sealed into a storage file by file as the sealer does."""
import subprocess
import time

from mission_control.offsite.sealing import seal_file


def replicate(binary, db, replica, during):
    """Run ``litestream replicate`` on `db` into the file replica folder `replica` while
    `during()` runs (after the first snapshot); `during`'s result."""
    config = replica.parent / f"{replica.name}.yml"
    config.write_text(f'dbs:\n  - path: "{db}"\n    replica:\n      type: "file"\n'
                      f'      path: "{replica}"\n')
    proc = subprocess.Popen([binary, "replicate", "-config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        found = during()
        time.sleep(2.5)
        return found
    finally:
        proc.terminate()
        proc.wait(30)


def seal_replica(replica, storage, recipient, private_key, work):
    """Put every LTX file of `replica` into `storage`, sealed and signed with `private_key`;
    the keys, sorted."""
    keys = []
    for path in sorted(replica.glob("ltx/*/*.ltx")):
        key = f"ltx/{path.parent.name}/{path.name}.age"
        packed = work / "packed"
        with open(packed, "wb") as sink:
            seal_file(path, sink, key, (recipient,), private_key)
        storage.put(key, packed)
        packed.unlink()
        keys.append(key)
    return keys
