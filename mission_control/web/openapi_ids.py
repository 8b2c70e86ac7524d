"""Stable `operationId`s of the API's operations: the names generated clients call them by."""
import re

#: (method, path) -> operationId. Renaming one breaks every generated client: add, never rename.
OPERATION_IDS = {
    ("get", "/api/openapi.json"): "getOpenapiDocument",
    ("post", "/api/auth/login"): "login",
    ("post", "/api/auth/logout"): "logout",
    ("get", "/api/auth/me"): "getCurrentUser",
    ("get", "/api/backup"): "listBackups",
    ("post", "/api/backup"): "createBackup",
    ("delete", "/api/backup"): "deleteBackup",
    ("post", "/api/backup/verify"): "verifyBackup",
    ("get", "/api/backup/download"): "downloadBackup",
    ("post", "/api/backup/upload"): "uploadBackup",
    ("post", "/api/backup/restore"): "restoreBackup",
    ("get", "/api/backup/status"): "getBackupStatus",
    ("get", "/api/backup/pitr"): "getPitrStatus",
    ("get", "/api/settings"): "listSettings",
    ("put", "/api/settings"): "updateSettings",
    ("delete", "/api/settings"): "resetSetting",
    ("post", "/api/backup/prune"): "pruneBackups",
    ("get", "/api/scheduler"): "listTasks",
    ("get", "/api/scheduler/preview"): "previewSchedule",
    ("post", "/api/scheduler"): "runTask",
    ("get", "/api/audit"): "listAuditEvents",
    ("get", "/api/plugins"): "listPlugins",
    ("get", "/api/offsite"): "listOffsiteResults",
    ("get", "/api/offsite/{target}/backups"): "listOffsiteCopies",
    ("post", "/api/offsite/{target}/fetch"): "fetchOffsiteCopy",
    ("get", "/api/health"): "getHealth",
    ("get", "/metrics"): "getMetrics",
}


def fallback_id(method, path):
    """A derived id for an operation not in `OPERATION_IDS` (`post /api/a_b/{c}` -> postApiABByC).

    The tests require every operation to be named in the table; this only keeps a document
    served by a build that forgot one usable by generators.
    """
    words = []
    for part in re.split(r"[/.]", path):
        if part:
            name = "".join(w.title() for w in re.split(r"[_\-{}]", part) if w)
            words.append("By" + name if part.startswith("{") else name)
    return method + "".join(words)


def assign_ids(paths):
    """Give every operation of `paths` (path -> method -> operation) its `operationId`, in place."""
    for path, ops in paths.items():
        for method, op in ops.items():
            op["operationId"] = OPERATION_IDS.get((method, path)) or fallback_id(method, path)
