"""A first end-to-end path: log in, make a backup, list it, delete it."""


def test_login_create_list_delete(admin_client):
    made = admin_client.post("/api/backup")
    assert made.status_code == 200, made.json
    name = made.json["backup"]["name"]
    listed = admin_client.get("/api/backup").json
    assert [b["name"] for b in listed["backups"]] == [name]
    assert admin_client.delete("/api/backup", json={"name": name}).json == {"success": True}
    assert admin_client.get("/api/backup").json["backups"] == []
