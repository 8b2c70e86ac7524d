"""The shipped monitoring's files (deploy/prometheus, deploy/grafana) as tests read them: the
alert rules, the dashboard's PromQL expressions, and the series names an expression reads."""
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "mission-control.json"
#: What Grafana's variables stand for, so an expression is plain PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")
#: Words of PromQL that are not series names (functions are told by their parenthesis).
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "bool", "inf", "nan", "atan2"}


def metric_names(expr):
    """The series names a PromQL expression reads: what is left once strings, label matchers,
    ranges, label lists, offsets, operators and function names are taken out."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for found in _IDENTIFIER.finditer(text):
        word = found.group(0)
        if word.lower() in _KEYWORDS or text[found.end():].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def rules():
    """Every rule of alerts.yml (each a dict: alert, expr, for, labels, annotations)."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def dashboard_exprs():
    """Every PromQL expression of the dashboard (panels, rows' panels, query variables), with
    Grafana's variables put in."""
    board = json.loads(DASHBOARD.read_text())
    exprs = []
    panels = list(board["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            exprs.append(re.fullmatch(r"label_values\((\w+), *\w+\)", query).group(1))
    for name, value in GRAFANA_VARIABLES.items():
        exprs = [e.replace(name, value) for e in exprs]
    assert not [e for e in exprs if "$" in e], "a Grafana variable without a stand-in"
    return exprs
