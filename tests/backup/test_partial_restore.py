"""Diff against a backup, partial restore of tables and rows, and undo: real SQLite files, the
real WSGI app."""
import os
import stat

import pytest
from jsonschema import Draft202012Validator

from mission_control.backup.partial import restore as restore_module
from mission_control.backup.partial import undo_files

from tests.support.accounts import logged_in_client
from tests.support.pitr_engine import Engine

#: Tables the service writes itself while restoring (its audit events, the safety copy's check):
#: never part of a partial restore, so left out where "every table" is compared.
SERVICE_WRITES = {"audit_log", "backup_verifications"}


def _seed(mc):
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO agents (id, name, created_at, updated_at) VALUES (?, ?, 0, 0)",
                         [(i, f"agent-{i}") for i in (1, 2, 3)])
        conn.executemany("INSERT INTO tasks (id, title, created_at, updated_at) VALUES (?, ?, 0, 0)",
                         [(i, f"task-{i}") for i in range(1, 11)])
        conn.executemany("INSERT INTO activities (id, type, entity_type, actor, description,"
                         " created_at) VALUES (?, 'x', 'task', 'a', 'd', 0)",
                         [(i,) for i in range(1, 6)])


def _change(mc, stamp=0):
    """After the backup: in tasks 2 deleted, 1 updated, 1 inserted; in agents 1 deleted and 1
    updated; in activities 1 inserted. `stamp`: the written rows' updated_at/created_at."""
    with mc.db.transaction() as conn:
        conn.execute("DELETE FROM tasks WHERE id IN (2, 3)")
        conn.execute("UPDATE tasks SET title = 'changed', updated_at = ? WHERE id = 5", (stamp,))
        conn.execute("INSERT INTO tasks (id, title, created_at, updated_at) VALUES (11, 'new',"
                     " ?, ?)", (stamp, stamp))
        conn.execute("DELETE FROM agents WHERE id = 1")
        conn.execute("UPDATE agents SET status = 'online', updated_at = ? WHERE id = 2", (stamp,))
        conn.execute("INSERT INTO activities (id, type, entity_type, actor, description,"
                     " created_at) VALUES (6, 'x', 'task', 'a', 'd', ?)", (stamp,))


def _dump(mc, skip=SERVICE_WRITES):
    """Every table's rows, in key order (one read transaction)."""
    conn = mc.db.conn()
    conn.execute("BEGIN")
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall()
                for n in names if n not in skip}
    finally:
        conn.execute("COMMIT")


def _files(mc):
    return sorted(p.name for p in mc.backups.dir.iterdir())


@pytest.fixture
def backed_up(mc, admin_client):
    _seed(mc)
    return admin_client.post("/api/backup").json["backup"]["name"]


def _by_table(answer):
    return {t["table"]: t for t in answer["tables"]}


def test_the_diff_reports_exactly_the_changes(mc, admin_client, backed_up):
    _change(mc)
    answer = admin_client.get(f"/api/backup/diff?from={backed_up}")
    assert answer.status_code == 200, answer.json
    tables = _by_table(answer.json)
    assert answer.json["from"] == backed_up and answer.json["to"] == "live"

    def counts(table):
        return {k: (tables[table][k]["count"], tables[table][k]["sample"])
                for k in ("inserted", "updated", "deleted")}
    assert counts("tasks") == {"inserted": (1, [11]), "updated": (1, [5]),
                               "deleted": (2, [2, 3])}
    assert counts("agents") == {"inserted": (0, []), "updated": (1, [2]), "deleted": (1, [1])}
    assert counts("activities") == {"inserted": (1, [6]), "updated": (0, []),
                                    "deleted": (0, [])}
    assert tables["tasks"]["restorable"] and tables["tasks"]["key"] == ["id"]
    assert tables["tasks"]["schema"] == []
    assert not tables["users"]["restorable"] and "whole database" in tables["users"]["refused"]
    assert not tables["audit_log"]["restorable"]
    # Against another backup: the same changes between the two files.
    later = admin_client.post("/api/backup").json["backup"]["name"]
    between = _by_table(admin_client.get(f"/api/backup/diff?from={backed_up}&to={later}").json)
    for table in ("tasks", "agents", "activities"):
        assert {k: between[table][k] for k in ("inserted", "updated", "deleted")} == \
            {k: tables[table][k] for k in ("inserted", "updated", "deleted")}


def test_samples_stop_at_20_and_counts_do_not(mc, admin_client, backed_up):
    with mc.db.transaction() as conn:
        conn.executemany("INSERT INTO tasks (title, created_at, updated_at) VALUES ('n', 0, 0)",
                         [()] * 50)
    tasks = _by_table(admin_client.get(f"/api/backup/diff?from={backed_up}").json)["tasks"]
    assert tasks["inserted"]["count"] == 50 and tasks["inserted"]["sample"] == list(range(11, 31))


def test_restoring_deleted_rows_keeps_later_rows_and_undo_puts_everything_back(
        mc, admin_client, backed_up):
    _change(mc)
    before = _dump(mc)
    files = _files(mc)
    body = {"name": backed_up, "rows": {"tasks": [2, 3], "agents": [1]}}
    dry = admin_client.post("/api/backup/restore", json={**body, "dry_run": True})
    assert dry.status_code == 200, dry.json
    assert dry.json["dry_run"] and dry.json["totals"] == {"inserted": 3, "updated": 0,
                                                          "deleted": 0}
    assert dry.json["conflicts"] == 0 and _dump(mc) == before and _files(mc) == files

    done = admin_client.post("/api/backup/restore", json=body)
    assert done.status_code == 200, done.json
    after = _dump(mc)
    assert [r[0] for r in after["tasks"]] == list(range(1, 12))  # 11, added since, is kept
    assert dict((r[0], r[1]) for r in after["tasks"])[5] == "changed"  # not asked for: kept
    assert [r[0] for r in after["agents"]] == [1, 2, 3]
    assert after["agents"][1] == before["agents"][0]  # agent 2 keeps its later update
    assert after["activities"] == before["activities"]
    safety = done.json["safety_backup"]["name"]
    assert safety.startswith("pre-restore-") and (mc.backups.dir / safety).is_file()
    undo_path = undo_files.path_of(mc.backups.dir, done.json["undo"])
    assert stat.S_IMODE(os.stat(undo_path).st_mode) == 0o600
    listed = [b["name"] for b in admin_client.get("/api/backup").json["backups"]]
    assert undo_path.name not in listed  # not a backup
    event = mc.audit_store.query(action="backup_restore_partial")[0][0]
    assert event["detail"]["counts"]["tasks"] == {"inserted": 2, "updated": 0, "deleted": 0}
    assert event["detail"]["undo"] == done.json["undo"]

    undone = admin_client.post("/api/backup/restore/undo", json={"token": done.json["undo"]})
    assert undone.status_code == 200, undone.json
    assert undone.json["tables"]["tasks"] == {"inserted": 0, "updated": 0, "deleted": 2}
    assert _dump(mc) == before  # every table's rows as before the partial restore
    assert not undo_path.exists()
    assert admin_client.post("/api/backup/restore/undo",
                             json={"token": done.json["undo"]}).status_code == 404


def test_a_whole_table_comes_back_and_undo_reverts_it(mc, admin_client, backed_up):
    _change(mc)
    before = _dump(mc)
    done = admin_client.post("/api/backup/restore", json={"name": backed_up,
                                                          "tables": ["tasks", "agents"]})
    assert done.status_code == 200, done.json
    assert done.json["totals"] == {"inserted": 3, "updated": 2, "deleted": 1}
    backup_rows = _dump(mc)
    assert [r[1] for r in backup_rows["tasks"]] == [f"task-{i}" for i in range(1, 11)]
    assert backup_rows["activities"] == before["activities"]  # not chosen: untouched
    assert admin_client.post("/api/backup/restore/undo",
                             json={"token": done.json["undo"]}).status_code == 200
    assert _dump(mc) == before


@pytest.mark.parametrize("table, reason", [
    ("users", "whole database"), ("user_sessions", "whole database"), ("settings", "settings"),
    ("audit_log", "never rolled back"), ("scheduler_state", "scheduler"),
    ("offsite_copies", "off-site"), ("backup_verifications", "checks"),
    ("no_such_table", "no such table")])
def test_refused_tables_leave_the_database_unchanged(mc, admin_client, backed_up, table, reason):
    _change(mc)
    before, files = _dump(mc), _files(mc)
    for dry_run in (True, False):
        answer = admin_client.post("/api/backup/restore", json={
            "name": backed_up, "tables": ["tasks", table], "dry_run": dry_run})
        assert answer.status_code == 400, answer.json
        assert any(d.startswith(f"{table}: ") and reason in d for d in answer.json["details"])
    assert _dump(mc) == before and _files(mc) == files


def test_conflicts_refuse_until_forced(mc, admin_client, backed_up, clock):
    _change(mc, stamp=int(clock()) + 60)  # written after the backup was taken
    before, files = _dump(mc), _files(mc)
    body = {"name": backed_up, "tables": ["tasks"]}
    dry = admin_client.post("/api/backup/restore", json={**body, "dry_run": True}).json
    tasks = _by_table(dry)["tasks"]
    assert tasks["conflicts"] == {"count": 2, "sample": [5, 11]}
    assert tasks["conflict_check"] == "updated_at"
    refused = admin_client.post("/api/backup/restore", json=body)
    assert refused.status_code == 409 and "force" in refused.json["error"]
    assert _dump(mc) == before and _files(mc) == files
    assert mc.audit_store.query(action="backup_restore_failed")[0][0]["detail"]["partial"] is True
    # Rows deleted since never conflict: they come back without force.
    assert admin_client.post("/api/backup/restore", json={
        "name": backed_up, "rows": {"tasks": [2, 3]}}).status_code == 200
    forced = admin_client.post("/api/backup/restore", json={**body, "force": True})
    assert forced.status_code == 200 and forced.json["conflicts"] == 2


def test_a_unique_clash_is_a_conflict_and_changes_nothing(mc, admin_client, backed_up):
    with mc.db.transaction() as conn:
        conn.execute("DELETE FROM agents WHERE id = 1")
        conn.execute("INSERT INTO agents (id, name, created_at, updated_at)"
                     " VALUES (9, 'agent-1', 0, 0)")
    before, files = _dump(mc), _files(mc)
    answer = admin_client.post("/api/backup/restore", json={"name": backed_up,
                                                            "rows": {"agents": [1]}})
    assert answer.status_code == 409 and "constraint" in answer.json["error"], answer.json
    assert _dump(mc) == before
    new = set(_files(mc)) - set(files)
    assert all(n.startswith("pre-restore-") for n in new)  # no undo file for nothing done


def test_undo_refuses_when_rows_changed_since(mc, admin_client, backed_up):
    _change(mc)
    done = admin_client.post("/api/backup/restore", json={"name": backed_up,
                                                          "rows": {"tasks": [2, 5]}}).json
    with mc.db.transaction() as conn:
        conn.execute("UPDATE tasks SET title = 'edited again' WHERE id = 2")
    before = _dump(mc)
    answer = admin_client.post("/api/backup/restore/undo", json={"token": done["undo"]})
    assert answer.status_code == 409, answer.json
    assert answer.json["details"] == ["tasks 2: changed or deleted since"]
    assert _dump(mc) == before  # task 5's undo is not applied alone either
    assert undo_files.path_of(mc.backups.dir, done["undo"]).exists()


def test_a_table_without_a_primary_key_is_compared_by_rowid_and_refused(mc, admin_client):
    _seed(mc)
    with mc.db.transaction() as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.executemany("INSERT INTO notes VALUES (?)", [("a",), ("b",)])
    name = admin_client.post("/api/backup").json["backup"]["name"]
    mc.db.execute("DELETE FROM notes WHERE body = 'a'")
    notes = _by_table(admin_client.get(f"/api/backup/diff?from={name}").json)["notes"]
    assert notes["key"] == ["rowid"] and notes["deleted"]["count"] == 1
    assert not notes["restorable"] and "no primary key" in notes["refused"]
    answer = admin_client.post("/api/backup/restore", json={"name": name, "tables": ["notes"]})
    assert answer.status_code == 400 and "no primary key" in answer.json["details"][0]


def test_a_schema_difference_is_shown_and_refused(mc, admin_client, backed_up):
    with mc.db.transaction() as conn:
        conn.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY, v TEXT)")
    tables = _by_table(admin_client.get(f"/api/backup/diff?from={backed_up}").json)
    assert tables["extra"]["schema"] == ["table extra is not in the source"]
    assert tables["extra"]["compared"] is False and tables["extra"]["inserted"] is None
    answer = admin_client.post("/api/backup/restore", json={"name": backed_up,
                                                            "tables": ["extra"]})
    assert answer.status_code == 400 and "schema differs" in answer.json["details"][0]


@pytest.mark.parametrize("body, status, text", [
    ({"name": "mc-backup-2020-01-01_00-00-00.db", "tables": ["tasks"]}, 404, "not found"),
    ({"name": "../mission-control.db", "tables": ["tasks"]}, 400, "name"),
    ({"name": "{backup}", "rows": {"tasks": [{"id": 1}]}}, 400, "rows"),
    ({"name": "{backup}", "rows": {"tasks": [True]}}, 400, "rows"),
    ({"name": "{backup}", "rows": {"tasks": [999]}}, 400, "Unknown rows"),
    ({"name": "{backup}", "rows": {"tasks": []}}, 400, "rows"),
    ({"name": "{backup}", "tables": []}, 400, "tables"),
    ({"name": "{backup}", "tables": ["tasks"], "rows": {"tasks": [1]}}, 400, ""),
])
def test_bad_restore_input_is_a_clear_4xx_and_changes_nothing(
        mc, admin_client, backed_up, body, status, text):
    _change(mc)
    before, files = _dump(mc), _files(mc)
    body = {k: (v.format(backup=backed_up) if isinstance(v, str) else v) for k, v in body.items()}
    answer = admin_client.post("/api/backup/restore", json=body)
    assert answer.status_code == status, answer.json
    assert text in answer.json["error"] + " ".join(answer.json.get("details", []))
    assert "/" + str(mc.backups.dir).strip("/") not in answer.get_data(as_text=True)
    assert _dump(mc) == before and _files(mc) == files


def test_a_moment_is_compared_from_a_private_copy_that_is_removed(mc, admin_client):
    _seed(mc)
    engine = Engine(mc.backups.create("test").path)
    mc.pm.register(engine)
    _change(mc)
    answer = admin_client.get("/api/backup/diff?from=@1970-01-01T00:20:00Z")
    assert answer.status_code == 200, answer.json
    assert engine.asked == [1_200_000] and answer.json["from"] == "@1970-01-01T00:20:00.000Z"
    tasks = _by_table(answer.json)["tasks"]
    assert (tasks["inserted"]["count"], tasks["updated"]["count"], tasks["deleted"]["count"]) \
        == (1, 1, 2)
    assert not [p for p in os.listdir(mc.backups.dir) if p.startswith(".")
                and not p.endswith(".lock")]
    outside = admin_client.get("/api/backup/diff?from=@1970-01-01T00:40:00Z")
    assert outside.status_code == 404 and "window" in outside.json["error"]


@pytest.mark.parametrize("query, status", [
    ("", 400), ("?from=mc-backup-2020-01-01_00-00-00.db", 404), ("?from=../x.db", 400),
    ("?from={backup}&to=mc-backup-2020-01-01_00-00-00.db", 404),
    ("?from=@2026-01-01T00:00:00Z", 404), ("?from=@yesterday", 400)])
def test_bad_diff_input_is_a_clear_4xx(admin_client, backed_up, query, status):
    answer = admin_client.get("/api/backup/diff" + query.format(backup=backed_up))
    assert answer.status_code == status, answer.json
    assert answer.json["error"]


@pytest.mark.parametrize("token, status", [("nope", 400), ("../../x", 400),
                                           ("2026-12-06_10-00-00-0123456789ab", 404)])
def test_bad_undo_tokens(admin_client, token, status):
    assert admin_client.post("/api/backup/restore/undo",
                             json={"token": token}).status_code == status


def test_only_admins(mc, backed_up):
    operator = logged_in_client(mc, "oscar", role="operator")
    assert operator.get(f"/api/backup/diff?from={backed_up}").status_code == 403
    assert operator.post("/api/backup/restore", json={
        "name": backed_up, "tables": ["tasks"], "dry_run": True}).status_code == 403
    assert operator.post("/api/backup/restore/undo", json={
        "token": "2026-12-06_10-00-00-0123456789ab"}).status_code == 403


def test_a_row_changed_while_preparing_refuses_and_changes_nothing(
        mc, admin_client, backed_up, monkeypatch):
    _change(mc)
    real = restore_module.room_for_safety_copy

    def meanwhile(*args):  # after the plan was read, before the write: another writer's change
        mc.db.execute("UPDATE tasks SET title = 'meanwhile' WHERE id = 5")
        return real(*args)
    monkeypatch.setattr(restore_module, "room_for_safety_copy", meanwhile)
    answer = admin_client.post("/api/backup/restore", json={"name": backed_up,
                                                            "tables": ["tasks"]})
    assert answer.status_code == 409 and "changed while" in answer.json["error"]
    titles = dict((r[0], r[1]) for r in _dump(mc)["tasks"])
    assert titles[5] == "meanwhile" and 2 not in titles and 11 in titles
    assert not [n for n in _files(mc) if n.startswith(undo_files.PREFIX)]


def test_a_failure_before_commit_changes_nothing_and_is_audited(
        mc, admin_client, backed_up, monkeypatch):
    _change(mc)
    before = _dump(mc)

    def broken(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(undo_files, "write", broken)
    answer = admin_client.post("/api/backup/restore", json={"name": backed_up,
                                                            "rows": {"tasks": [2]}})
    assert answer.status_code == 500 and "nothing was changed" in answer.json["error"]
    assert _dump(mc) == before
    event = mc.audit_store.query(action="backup_restore_failed")[0][0]
    assert "No space left" in event["detail"]["reason"]


def test_a_held_lock_is_a_409(mc, admin_client, backed_up):
    with mc.backups.exclusive("busy"):
        assert admin_client.post("/api/backup/restore", json={
            "name": backed_up, "tables": ["tasks"], "dry_run": True}).status_code == 409
        assert admin_client.post("/api/backup/restore/undo", json={
            "token": "2026-12-06_10-00-00-0123456789ab"}).status_code == 409


def test_the_answers_match_their_openapi_schemas(mc, admin_client, backed_up):
    """The shapes the page is built on: each answer validates against the published document."""
    document = admin_client.get("/api/openapi.json").json
    components = {"components": document["components"]}

    def check(name, answer):
        Draft202012Validator({**components, "$ref": f"#/components/schemas/{name}"}) \
            .validate(answer)
    _change(mc)
    check("Diff", admin_client.get(f"/api/backup/diff?from={backed_up}").json)
    with mc.db.transaction() as conn:
        conn.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY)")
    check("Diff", admin_client.get(f"/api/backup/diff?from={backed_up}").json)
    body = {"name": backed_up, "rows": {"tasks": [2, 3, 4]}}
    check("PartialRestore", admin_client.post("/api/backup/restore",
                                              json={**body, "dry_run": True}).json)
    done = admin_client.post("/api/backup/restore", json=body).json
    check("PartialRestore", done)
    check("Undone", admin_client.post("/api/backup/restore/undo",
                                      json={"token": done["undo"]}).json)


def test_undo_frees_a_unique_value_before_putting_its_old_holder_back(mc, admin_client,
                                                                       backed_up):
    with mc.db.transaction() as conn:  # agent 1 deleted; agent 9 took its name since
        conn.execute("DELETE FROM agents WHERE id = 1")
        conn.execute("INSERT INTO agents (id, name, created_at, updated_at)"
                     " VALUES (9, 'agent-1', 0, 0)")
    before = _dump(mc)
    done = admin_client.post("/api/backup/restore", json={"name": backed_up,
                                                          "tables": ["agents"]})
    assert done.status_code == 200, done.json
    assert [r[1] for r in _dump(mc)["agents"]] == ["agent-1", "agent-2", "agent-3"]
    undone = admin_client.post("/api/backup/restore/undo", json={"token": done.json["undo"]})
    assert undone.status_code == 200, undone.json
    assert _dump(mc) == before
