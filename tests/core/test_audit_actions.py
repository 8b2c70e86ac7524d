"""Meta-tests of the audit catalogue (`mission_control/audit_actions.py`): every action the
service and the built-in plugins emit is in it, every entry is still emitted, its failure flags
agree with the event log's WARNING rule, and the page's label table is the catalogue's."""
import ast
import re
from pathlib import Path

from mission_control import health
from mission_control.audit_actions import ACTIONS, FAILURES, LABELS

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("mission_control", "plugins")
#: Emits whose action is not a literal at the call, with where that literal is spelled instead
#: (the scan below finds it there): a task's `audit=` field, an `"action"` key of a dict.
INDIRECT = {("mission_control/scheduling/scheduler.py", "task.audit"),
            ("mission_control/backup/uploads.py", "event.pop('action')")}


def _text(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def scan():
    """`(emitted, read, indirect)`: `{action: [where, ...]}` of the actions the source emits and
    of those it looks up (`query(action=...)`), and the emits whose action is not a literal."""
    emitted, read, indirect = {}, {}, set()
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), where)):
                found = []
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    name, receiver = node.func.attr, ast.unparse(node.func.value)
                    keywords = {k.arg: k.value for k in node.keywords}
                    if name == "emit" and "audit" in receiver:  # mc.audit.emit, self._audit.emit
                        if node.args and _text(node.args[0]):
                            found.append((emitted, _text(node.args[0])))
                        else:
                            indirect.add((where, ast.unparse(node.args[0])))
                    if name == "query" and _text(keywords.get("action")):
                        found.append((read, _text(keywords["action"])))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                        and node.func.id == "dict":  # dict(event, action="plugin_error")
                    found += [(emitted, _text(k.value)) for k in node.keywords
                              if k.arg == "action" and _text(k.value)]
                if isinstance(node, ast.Call):  # Task(..., audit="auto_backup")
                    found += [(emitted, _text(k.value)) for k in node.keywords
                              if k.arg == "audit" and _text(k.value)]
                if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "audit" \
                        and _text(node.value):  # the default of Task.audit
                    found.append((emitted, _text(node.value)))
                if isinstance(node, ast.Dict):  # {"action": "backup_upload_refused", ...}
                    found += [(emitted, _text(v)) for k, v in zip(node.keys, node.values)
                              if k is not None and _text(k) == "action" and _text(v)]
                for table, action in found:
                    table.setdefault(action, []).append(f"{where}:{node.lineno}")
    return emitted, read, indirect


def test_every_emitted_action_is_in_the_catalogue_and_every_entry_is_emitted():
    emitted, read, indirect = scan()
    catalogue = {action.name for action in ACTIONS}
    assert len(catalogue) == len(ACTIONS)
    unknown = {action: where for action, where in {**read, **emitted}.items()
               if action not in catalogue}
    assert not unknown, f"add these to mission_control/audit_actions.py: {unknown}"
    assert not catalogue - set(emitted), "catalogued but emitted nowhere"
    # A new emit of a computed action must say where its literal is, or the scan misses it.
    assert indirect == INDIRECT


def test_failures_are_what_the_event_log_warns_about():
    from plugins.event_log import _WARNING_SUFFIXES
    assert FAILURES == {a.name for a in ACTIONS if a.name.endswith(_WARNING_SUFFIXES)}
    # The health verdict's own lists name catalogued actions.
    assert health.SUCCESS in LABELS and health.SUCCESS not in FAILURES
    assert set(health.FAILURES) <= FAILURES


def test_the_page_labels_every_catalogued_action_as_the_catalogue_does():
    script = (ROOT / "mission_control" / "static" / "format.js").read_text()
    table = re.search(r"^const ACTIONS = \{\n(.*?)^\};", script, re.M | re.S).group(1)
    rows = re.findall(r'^  (\w+): "([^"\\]*)",$', table, re.M)
    assert len(rows) == len(table.strip().splitlines()), "a line of ACTIONS was not understood"
    assert dict(rows) == LABELS
    assert [name for name, _ in rows] == list(LABELS)  # same order, so a diff reads easily
