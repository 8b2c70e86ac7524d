"""Off-site copy targets: which are configured, and each one's last result, recorded and audited."""
import json
import logging

from ..errors import describe_error
from .signing import DELTA_FIELDS

def last_copy(detail):
    """`{kind, uploaded_bytes, chain_length}` of the copy a result's `detail` tells of: what a
    copy made before incremental copies existed uploaded is its stored size, a full copy; all
    None for a failed copy."""
    if detail.get("stored_size") is None and detail.get("uploaded_bytes") is None:
        return {"kind": None, "uploaded_bytes": None, "chain_length": None}
    return {"kind": detail.get("kind") or "full",
            "uploaded_bytes": detail.get("uploaded_bytes", detail.get("stored_size")),
            "chain_length": detail.get("chain_length") or 0}


log = logging.getLogger(__name__)


class OffsiteResults:
    """SQL for `offsite_results`, and the audit events that go with each result.

    :param db: the `Database`.
    :param clock: returns unix seconds.
    :param auditor: the `Auditor`; successes are audited as ``offsite_copy``, failures as
        ``offsite_failed``.
    :param hooks: the `Hooks`, asked which targets are configured (``offsite_targets``).
    :param signer: the `offsite_signing.Signer` that signs each copy's record (`record_copy`).
    """

    def __init__(self, db, clock, auditor, hooks=None, signer=None):
        self._db = db
        self._clock = clock
        self._audit = auditor
        self._hooks = hooks
        self.signer = signer

    def configured(self):
        """Sorted names of the targets the plugins say are configured now (``offsite_targets``).

        A plugin whose hook raises is logged and counts no target.
        """
        return sorted(self._answers())

    def targets(self):
        """`{name: target}` of the configured targets that can also give copies back.

        Those are the hook's answers that are objects with ``list_copies`` and ``open_copy``
        rather than plain names.
        """
        return {name: item for name, item in self._answers().items()
                if callable(getattr(item, "list_copies", None))
                and callable(getattr(item, "open_copy", None))}

    def _answers(self):
        """`{name: answer}` of every ``offsite_targets`` answer (a name, or a target object)."""
        if self._hooks is None:
            return {}
        found = {}
        for items in self._hooks.offsite_targets():
            for item in items or ():
                found.setdefault(str(getattr(item, "name", item)), item)
        return found

    def succeeded(self, target, backup, actor, *, location, detail=None, remote_name=None,
                  encoded=None):
        """Record and audit a verified copy of `backup` (a ``BackupInfo``) at `location`.

        :param remote_name: the copy's name at the target (default: the backup's name).
        :param encoded: the ``mission_control.Encoded`` that `encode` returned, when the copy was
            packed by it: its sizes and SHA-256s are remembered, so a copy fetched back or
            drilled later can be compared with what was sent.
        """
        detail = {"target": target, "name": backup.name, "size": backup.size,
                  "location": location, **(detail or {})}
        if encoded is not None:
            remote_name = remote_name or backup.name
            detail.update(remote_name=remote_name, sha256=encoded.sha256,
                          plain_sha256=encoded.plain_sha256, stored_size=encoded.size,
                          ratio=encoded.ratio, compressed=encoded.compressed,
                          encrypted=encoded.encrypted)
            known = self.copy_record(target, remote_name)
            if known is None or known["sha256"] != encoded.sha256:
                # A plugin that does not upload manifests still gets its copies recorded here.
                self.record_copy(target, backup, remote_name, encoded)
        self._store(target, True, backup.name, location, "Copied and verified", detail)
        self._audit.emit("offsite_copy", actor, target_type="offsite", target_id=target,
                         detail=detail)

    def record_copy(self, target, backup, remote_name, encoded, *, location=None, etag=None,
                    delta=None, uploaded=None):
        """Sign and remember that `remote_name` at `target` is this service's copy of `backup`.

        Call it once the copy is uploaded and verified, then put the manifest it returns beside
        the copy as ``<remote_name>`` + ``MANIFEST_SUFFIX``: fetches and drills refuse any copy
        that has neither this record nor a manifest signed by a trusted key.
        :param encoded: the ``Encoded`` that `encode` returned (or one built for a plain copy).
        :param location: where the copy went (the target's folder or ``s3://bucket/prefix/``):
            a copy gone from there that this service did not prune is reported missing.
        :param etag: the ETag the store gave the upload, when it gives one.
        :param delta: for an incremental copy (`remote_name` is then its manifest object's and
            `encoded` describes that object, with the whole database's plain size and SHA-256):
            ``{"parent": remote name, "chain_length": n >= 1, "objects": {pack: {"size",
            "sha256"}}}``, signed with the record (`signing.DELTA_FIELDS`).
        :param uploaded: the bytes this copy's upload stored (default: `encoded.size`).
        :return: the signed manifest (JSON bytes).
        :raises OSError: the signing key could not be read or created.
        """
        record = {"target": target, "remote_name": remote_name, "backup": backup.name,
                  "size": encoded.size, "sha256": encoded.sha256,
                  "plain_size": encoded.plain_size, "plain_sha256": encoded.plain_sha256,
                  "compressed": bool(encoded.compressed), "encrypted": bool(encoded.encrypted),
                  "created_at": int(self._clock())}
        if delta:
            record.update({k: delta[k] for k in DELTA_FIELDS})
        manifest = self.signer.sign(record)
        self.remember(record, manifest, location=location, etag=etag,
                      uploaded=encoded.size if uploaded is None else uploaded)
        return manifest

    def remember(self, record, manifest, *, location=None, etag=None, uploaded=None):
        """Keep `record` (the `RECORD_FIELDS`, and a delta copy's `DELTA_FIELDS`) and its signed
        `manifest` in `offsite_copies`, with where the copy is (`location`, None: not known),
        its upload's `etag` and the bytes it `uploaded` (None: not known)."""
        delta = record.get("parent") is not None
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO offsite_copies (target, remote_name, backup, size,"
                " sha256, plain_size, plain_sha256, compressed, encrypted, created_at, manifest,"
                " location, etag, kind, parent, chain_length, objects, uploaded)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (record["target"], record["remote_name"], record["backup"], record["size"],
                 record["sha256"], record["plain_size"], record["plain_sha256"],
                 int(record["compressed"]), int(record["encrypted"]), record["created_at"],
                 manifest.decode() if isinstance(manifest, bytes) else manifest,
                 location, etag, "delta" if delta else "full",
                 record["parent"] if delta else None,
                 record["chain_length"] if delta else 0,
                 json.dumps(record["objects"], sort_keys=True) if delta else None, uploaded))

    def newest_recorded(self, target, location, count, recorded_before=None):
        """The remote names of the newest `count` copies recorded as sent to `target` at
        `location` and not pruned here, newest first (names sort by time).

        :param recorded_before: unix seconds: of those, leave out any recorded in that second
            or later (a copy another send recorded after the caller listed the target).
        """
        rows = self._db.query(
            "SELECT remote_name, created_at FROM offsite_copies WHERE target = ? AND"
            " location = ? AND pruned_at IS NULL ORDER BY remote_name DESC LIMIT ?",
            (target, location, int(count)))
        return [row["remote_name"] for row in rows
                if recorded_before is None or row["created_at"] < int(recorded_before)]

    def place(self, target, remote_names, location):
        """Remember that copies recorded before locations were (NULL) are at `location`."""
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE offsite_copies SET location = ? WHERE target = ? AND remote_name = ?"
                " AND location IS NULL", [(location, target, name) for name in remote_names])

    def pruned(self, target, remote_name):
        """Remember that this service deleted copy `remote_name` (never to be reported
        missing)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE offsite_copies SET pruned_at = ? WHERE target = ? AND"
                         " remote_name = ?", (int(self._clock()), target, remote_name))

    def failed(self, target, backup, actor, error, *, location=None):
        """Record and audit a failed copy. `error` is an exception or an already safe sentence.

        :return: the reason recorded.
        """
        reason = error if isinstance(error, str) else describe_error(error)
        log.error("off-site copy to %s of %s failed: %s", target,
                  backup.name if backup else "?", reason,
                  extra={"action": "offsite_failed", "target": target})
        detail = {"target": target, "name": backup.name if backup else None, "reason": reason}
        if location:
            detail["location"] = location
        self._store(target, False, detail["name"], location, reason, detail)
        self._audit.emit("offsite_failed", actor, target_type="offsite", target_id=target,
                         detail=detail)
        return reason

    def _store(self, target, ok, backup, location, message, detail):
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO offsite_results (target, ok, backup, location, message, detail,"
                " finished_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(target) DO UPDATE SET"
                " ok = excluded.ok, backup = excluded.backup, location = excluded.location,"
                " message = excluded.message, detail = excluded.detail,"
                " finished_at = excluded.finished_at",
                (target, int(ok), backup, location, message,
                 json.dumps(detail, sort_keys=True), int(self._clock())))

    def list(self):
        """The last result of every target that ever ran, by target name."""
        rows = self._rows("SELECT target, ok, backup, location, message, detail, finished_at"
                          " FROM offsite_results ORDER BY target")
        for row in rows:
            detail = row["detail"] or {}
            row["stored_size"] = detail.get("stored_size")
            row["ratio"] = detail.get("ratio")
            row.update(last_copy(detail))
            # Copies retention would have deleted but whose lock has not expired: not a failure.
            row["held"] = detail.get("held") or []
            # Kept copies someone replaced or deleted (they fail the verdict), and kept copies
            # without a catalog entry (`recover` cannot use them).
            for key in ("changed", "missing"):
                row[key] = detail.get(key) or []
            # Kept delta copies whose chain lacks an ancestor (they fail the verdict), and
            # ancestors kept only because a kept copy's chain needs them.
            row["broken"] = detail.get("broken") or []
            row["chained"] = detail.get("chained") or []
            row["uncataloged"] = [item["name"] for item in detail.get("uncataloged") or ()]
        return rows

    def get(self, target):
        return next((row for row in self.list() if row["target"] == target), None)

    def copy_record(self, target, remote_name):
        """What was sent as `remote_name` to `target` (sizes, SHA-256s, the upload's ETag; its
        `kind`, ``full`` or ``delta``, and a delta copy's `parent`, `chain_length` and
        `objects`; the bytes it `uploaded`), or None if not from here."""
        row = self._db.query_one(
            "SELECT target, remote_name, backup, size, sha256, plain_size, plain_sha256,"
            " compressed, encrypted, created_at, etag, kind, parent, chain_length, objects,"
            " uploaded FROM offsite_copies WHERE target = ? AND remote_name = ?",
            (target, remote_name))
        if row is not None:
            row["objects"] = json.loads(row["objects"]) if row["objects"] else {}
        return row

    def copy_objects(self, target, remote_name):
        """`(versions, manifest)` of copy `remote_name` at `target`: the `{key: version_id}` its
        objects were uploaded as (None for copies made before they were recorded) and its signed
        manifest (text, None for copies made before signing)."""
        row = self._db.query_one("SELECT versions, manifest FROM offsite_copies WHERE target = ?"
                                 " AND remote_name = ?", (target, remote_name))
        if row is None:
            return None, None
        return (json.loads(row["versions"]) if row["versions"] else None), row["manifest"]

    def set_versions(self, target, remote_name, versions):
        """Remember the `{key: version_id}` copy `remote_name`'s objects were stored as (a
        version id is None on a storage without versions)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE offsite_copies SET versions = ? WHERE target = ? AND"
                         " remote_name = ?", (json.dumps(versions, sort_keys=True), target,
                                              remote_name))

    def uploaded_totals(self):
        """`{target: bytes}` every copy this service recorded has uploaded to each target (a
        copy recorded before uploads were counted: its stored size)."""
        rows = self._db.query("SELECT target, SUM(COALESCE(uploaded, size)) AS total"
                              " FROM offsite_copies GROUP BY target ORDER BY target")
        return {row["target"]: row["total"] or 0 for row in rows}

    def records_of(self, backup):
        """The records of every copy of `backup` (a backup's name) that this service knows of."""
        return self._db.query(
            "SELECT target, remote_name, plain_sha256 FROM offsite_copies WHERE backup = ?",
            (backup,))

    def drilled(self, target, ok, remote_name, message, detail):
        """Remember the last restore drill of `target` (the auditing is the caller's)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO offsite_drills (target, ok, remote_name, message, detail,"
                " finished_at) VALUES (?,?,?,?,?,?)",
                (target, int(ok), remote_name, message, json.dumps(detail, sort_keys=True),
                 int(self._clock())))

    def drills(self):
        """The last restore drill of every target that was ever drilled, by target name."""
        return self._rows("SELECT target, ok, remote_name, message, detail, finished_at"
                          " FROM offsite_drills ORDER BY target")

    def _rows(self, sql):
        """The rows of `sql`, with `ok` as a bool and `detail` decoded from JSON."""
        rows = self._db.query(sql)
        for row in rows:
            row["ok"] = bool(row["ok"])
            row["detail"] = json.loads(row["detail"]) if row["detail"] else None
        return rows
