"""The built-in audit sinks: a JSON-lines file and Python logging / syslog."""
import json
import logging
import socket
import subprocess
import sys
import threading

import pytest

from mission_control.builtins.audit_jsonl import append_line
from mission_control.errors import ValidationFailed


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_off_by_default(mc, tmp_path):
    mc.backups.create(actor="test")
    assert list(tmp_path.rglob("*.jsonl")) == []


def test_jsonl_receives_every_event(admin_client, mc, tmp_path):
    path = tmp_path / "trail" / "audit.jsonl"
    path.parent.mkdir()
    mc.settings.update({"audit.jsonl.path": str(path)}, actor="test")
    admin_client.post("/api/backup")
    written = lines(path)
    # The settings change that turned the sink on is its first line (the login came before).
    assert [e["action"] for e in written] == ["settings_update", "backup_create"]
    assert written[1]["actor"] == "alice" and written[1]["detail"]["size"] > 0
    assert path.stat().st_mode & 0o777 == 0o600


def test_jsonl_rejects_a_path_that_is_not_a_jsonl_file(mc, tmp_path):
    target = tmp_path / "bashrc"
    for path, reason in ((str(target), "must end in .jsonl"),
                         ("trail/audit.jsonl", "must be an absolute path (starting with /)")):
        with pytest.raises(ValidationFailed) as refused:
            mc.settings.update({"audit.jsonl.path": path}, actor="test")
        assert refused.value.details == [f"audit.jsonl.path: {reason}"]
    with mc.db.transaction() as conn:  # stored before the check existed: reads as off
        conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 0)",
                     ("audit.jsonl.path", str(target)))
    mc.backups.create(actor="test")
    assert not target.exists()


def test_jsonl_lines_never_interleave_across_threads_and_processes(tmp_path):
    path = tmp_path / "audit.jsonl"
    filler = "x" * 5000  # lines longer than a pipe buffer, to give interleaving a chance
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys; from mission_control.builtins.audit_jsonl import append_line\n"
        f"for i in range(200): append_line(sys.argv[1], {{'who': 'proc', 'i': i, 'f': '{filler}'}})"
    ), str(path)])

    def writer(n):
        for i in range(100):
            append_line(str(path), {"who": f"thread{n}", "i": i, "f": filler})
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert child.wait(60) == 0
    written = lines(path)  # every line parses: nothing interleaved
    assert len(written) == 600
    for who, count in [("proc", 200)] + [(f"thread{n}", 100) for n in range(4)]:
        assert [e["i"] for e in written if e["who"] == who] == list(range(count))


def test_logging_sink_logs_json(mc, caplog):
    mc.settings.update({"audit.syslog.enabled": True}, actor="test")
    with caplog.at_level(logging.INFO, logger="mission_control.audit_trail"):
        mc.backups.create(actor="test")
    events = [json.loads(r.getMessage()) for r in caplog.records
              if r.name == "mission_control.audit_trail"]
    assert [e["action"] for e in events] == ["backup_create"]


@pytest.fixture
def syslog_receiver():
    """A UDP syslog receiver on a free loopback port; yields (address, received list)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield f"127.0.0.1:{sock.getsockname()[1]}", sock
    sock.close()


def test_syslog_sink_sends_to_a_syslog_daemon(mc, syslog_receiver):
    address, sock = syslog_receiver
    mc.settings.update({"audit.syslog.enabled": True, "audit.syslog.address": address,
                        "audit.syslog.facility": "local3"}, actor="test")
    mc.backups.create(actor="test")
    packets = [sock.recv(65536).decode() for _ in range(2)]
    # <PRI> = facility local3 (19) * 8 + severity info (6)
    assert all(p.startswith("<158>mission-control: ") for p in packets)
    events = [json.loads(p.split(": ", 1)[1].rstrip("\x00")) for p in packets]
    assert [e["action"] for e in events] == ["settings_update", "backup_create"]


def test_syslog_bad_address_is_a_sink_failure_not_a_backup_failure(mc):
    mc.settings.update({"audit.syslog.enabled": True, "audit.syslog.address": "nonsense"},
                       actor="test")
    made = mc.backups.create(actor="test")
    assert made.path.is_file()
    errors = mc.audit_store.query(action="plugin_error")[0]
    assert errors[0]["target_id"] == "audit_syslog"
