"""Built-in audit sink: writes every audit event to the `audit_log` table that `GET /api/audit` reads."""
from mission_control import hookimpl


@hookimpl(trylast=True)
def audit(mc, event):
    mc.audit_store.insert(event)
