"""`Actor`: who did something and from where, one value from the entry point to the audit trail."""
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Actor:
    """Who asked, built once per entry point (web request, CLI, scheduler, script) and passed on.

    :param name: the name the audit trail records (a username, ``"scheduler"``, ``"cli:alice"``).
    :param id: the user's id, when a database user asked (None for the API key, CLI, scheduler).
    :param ip_address: the client's address as trusted (see ``MC_TRUSTED_PROXIES``), for the web.
    :param user_agent: the client's ``User-Agent``, for the web.

    ``str(actor)`` is the name, so plugins that log or compare the actor as text keep working.
    """

    name: str
    id: int | None = None
    ip_address: str | None = None
    user_agent: str | None = None

    def __str__(self):
        return self.name

    def as_user(self, user):
        """The same origin (address, user agent), acting as `user` (a `User`)."""
        return replace(self, name=user.username, id=user.id)

    def audit_fields(self):
        """The audit event's `actor`, `actor_id`, `ip_address` and `user_agent`."""
        return {"actor": self.name, "actor_id": self.id, "ip_address": self.ip_address,
                "user_agent": self.user_agent}


#: The scheduler's own runs.
SCHEDULER = Actor("scheduler")


def as_actor(actor):
    """`actor` as an `Actor`: scripts may pass a plain name (``mc.backups.create("nightly")``)."""
    if isinstance(actor, Actor):
        return actor
    if isinstance(actor, str) and actor:
        return Actor(actor)
    raise TypeError("actor must be an Actor or a non-empty name")
