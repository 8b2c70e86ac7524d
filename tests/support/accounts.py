"""Logging in for tests: the one test password, a logged-in test client, and the `Auth` helper."""
from werkzeug.test import Client

from mission_control.web import WebApp

PASSWORD = "correct-horse-battery"


def logged_in_client(mc, username="alice", role="admin", password=PASSWORD):
    """A new test client for `mc`, logged in as a new user with that role."""
    mc.users.add(username, password, role=role)
    client = Client(WebApp(mc))
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    return client


class Auth:
    """Logs the test client in and out, like Flask's tutorial `auth` fixture."""

    def __init__(self, client):
        self.client = client

    def login(self, username="alice", password=PASSWORD):
        return self.client.post("/api/auth/login", json={"username": username, "password": password})

    def logout(self):
        return self.client.post("/api/auth/logout")
