"""A client generated from /api/openapi.json (openapi-python-client) works on a live server."""
import importlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.accounts import PASSWORD

#: Package name of the generated client: unique, so it never shadows an installed module.
CLIENT = "mc_generated_client"


def generate_client(base_url, folder):
    """Fetch the served document and generate a client package into `folder`; returns the module."""
    with urllib.request.urlopen(f"{base_url}/api/openapi.json", timeout=30) as response:
        (folder / "openapi.json").write_bytes(response.read())
    # No post hooks: the default ones run ruff, which the client does not need to work.
    (folder / "generator.json").write_text(json.dumps({"post_hooks": []}))
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [str(generator), "generate", "--path", "openapi.json", "--config", "generator.json",
         "--output-path", CLIENT, "--meta", "none"],
        cwd=folder, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(CLIENT)
    finally:
        sys.path.remove(str(folder))


def test_a_generated_client_logs_in_creates_lists_and_deletes_a_backup(mc, users, live_server,
                                                                      tmp_path):
    client_pkg = generate_client(live_server, tmp_path)
    api = f"{CLIENT}.api"
    login = importlib.import_module(f"{api}.auth.login")
    create = importlib.import_module(f"{api}.backup.create_backup")
    listing = importlib.import_module(f"{api}.backup.list_backups")
    delete = importlib.import_module(f"{api}.backup.delete_backup")
    models = importlib.import_module(f"{CLIENT}.models")

    # One httpx client underneath: the session cookie set by login rides on every later call.
    with client_pkg.Client(base_url=live_server, raise_on_unexpected_status=True) as client:
        answer = login.sync_detailed(client=client, body=models.LoginBody(
            username=users["admin"], password=PASSWORD))
        assert answer.status_code == 200
        assert answer.parsed.user.username == "alice"

        made = create.sync(client=client)
        assert made.success is True
        name = made.backup.name

        listed = listing.sync(client=client)
        assert [b.name for b in listed.backups] == [name]
        assert listed.backups[0].size == made.backup.size

        gone = delete.sync(client=client, body=models.DeleteBackupBody(name=name))
        assert gone.success is True
        assert listing.sync(client=client).backups == []

    with client_pkg.Client(base_url=live_server) as anonymous:
        refused = listing.sync_detailed(client=anonymous)
        assert refused.status_code == 401
        assert refused.parsed.error
    events, _ = mc.audit_store.query(limit=2)
    assert [e["action"] for e in events] == ["backup_delete", "backup_create"]
