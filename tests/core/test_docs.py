"""The documentation matches the code: the generated references (docs/gen_reference.py) are up to
date, the README is a landing page with the two commands, the changelog's top version is the
package's, and the admin page's help texts agree with the settings they describe."""
import html
import importlib.util
import re
from pathlib import Path

import pytest

from mission_control import __version__
from mission_control.scheduling.cron import DEFAULT_SCHEDULE
from mission_control.scheduling.cron import describe as describe_schedule

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
STATIC = ROOT / "mission_control" / "static"
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/mission-control serve"
TEST = ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
        ".venv/bin/python -m pytest")


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    pytest.importorskip("prometheus_client", reason="the metrics page is read from a scrape")
    return load_generator()


@pytest.fixture(scope="module")
def generated(gen):
    """`{path: text}` of every generated file, as the code makes it now."""
    return gen.pages()


@pytest.fixture(scope="module")
def settings():
    """Every setting the host and the built-in plugins declare, by key."""
    with load_generator().service() as mc:
        return dict(mc.settings.definitions)


# The generated references --------------------------------------------------------------------

def test_the_generated_references_match_the_code(generated):
    stale = [str(path.relative_to(ROOT)) for path, text in generated.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"run `python docs/gen_reference.py`: these differ from the code: {stale}"


def test_the_references_cover_what_the_code_declares(generated, settings):
    from mission_control.audit_actions import ACTIONS
    from mission_control.config import OPTIONS

    pages = {path.name: text for path, text in generated.items()}
    assert all(f"| `{key}` |" in pages["settings.md"] for key in settings)
    assert all(f"| `{o.env}` |" in pages["options.md"] for o in OPTIONS)
    assert all(f"| `{a.name}` |" in pages["audit-actions.md"] for a in ACTIONS)
    for command in ("serve", "backup create", "backup restore", "offsite fetch", "recover",
                    "alerts test", "config show", "user add"):
        assert f"\n## mission-control {command}\n" in pages["cli.md"], command
    assert "### POST /api/backup\n" in pages["http-api.md"]
    assert "| `mission_control_backup_verdict` | gauge | `verdict` |" in pages["metrics.md"]


def test_check_names_a_stale_or_missing_file_and_writing_fixes_it(gen, generated, tmp_path,
                                                                   monkeypatch, capsys):
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(gen, "pages", lambda: {tmp_path / p.relative_to(ROOT): text
                                               for p, text in generated.items()})
    assert gen.main(["--check"]) == 1 and not (tmp_path / "docs").exists()
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    page = tmp_path / "docs" / "reference" / "settings.md"
    page.write_text(page.read_text().replace("general.backup_retention_count", "x"))
    capsys.readouterr()
    assert gen.main(["--check"]) == 1
    assert capsys.readouterr().out == f"stale: {Path('docs/reference/settings.md')}\n"


def test_the_settings_page_table_agrees_with_the_definitions(settings):
    """The hand-written table of docs/settings-and-scheduler.md explains the host's settings; its
    defaults and ranges are the definitions'."""
    page = (ROOT / "docs" / "settings-and-scheduler.md").read_text(encoding="utf-8")
    rows = [row for row in re.findall(r"^\| `([\w.]+)` \| ([^|]*) \| `\"?([^`\"]*)\"?`", page,
                                      re.M) if SETTING.match(row[0])]
    assert len(rows) >= 6
    for key, kind, default in rows:
        definition = settings[key]
        assert default == definition.default, key
        bounds = re.search(r"whole number (\d+)\.\.(\d+)", kind)
        if bounds:
            assert (int(bounds[1]), int(bounds[2])) == (definition.minimum, definition.maximum), key


# The README ----------------------------------------------------------------------------------

def test_the_readme_is_a_landing_page_with_the_two_commands():
    assert len(README.splitlines()) <= 300
    quick = README.split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b.strip() for b in re.findall(r"```sh\n(.*?)```", quick, re.S)]
    assert blocks == [INSTALL, TEST]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.rstrip().splitlines()[-1] == TEST


def test_the_readmes_commands_are_the_sites():
    """The README repeats the site's getting-started and recovery commands word for word, so it
    cannot contradict them."""
    site = "\n".join((ROOT / "docs" / page).read_text(encoding="utf-8")
                     for page in ("getting-started.md", "offsite-and-recovery.md"))
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    assert len(blocks) >= 6
    for block in blocks:
        assert block in site, block


def test_every_link_of_the_readme_and_the_docs_index_exists():
    for source, text in ((ROOT / "README.md", README),
                         (ROOT / "docs" / "index.md", (ROOT / "docs" / "index.md").read_text())):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not re.match(r"https?:", target):
                assert (source.parent / target).exists(), f"{source.name}: {target}"


def test_every_docs_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    listed = set(re.findall(r": ([\w/.-]+\.md)$", nav, re.M))
    assert pages == listed, (f"not in the nav: {pages - listed}; "
                             f"in the nav, missing: {listed - pages}")


# The changelog -------------------------------------------------------------------------------

def test_the_changelog_keeps_a_changelog_and_tops_with_the_package_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text
    versions = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    released = [(v, d) for v, d in versions if v != "Unreleased"]
    assert released and released[0][0] == __version__, (released[:1], __version__)
    assert all(d for _, d in released), "every released version has a date"
    for version, _ in released:  # each version heading has its link at the bottom
        assert re.search(rf"^\[{re.escape(version)}\]: \S+$", text, re.M), version
    sections = set(re.findall(r"^### (\w+)$", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


# The page's help texts -----------------------------------------------------------------------

SETTING = re.compile(r"^(general|retention|offsite|pitr|email|healthchecks|audit|diskguard|backup)"
                     r"\.[a-z0-9_]+(\.[a-z0-9_]+)?$")


def page_setting_keys():
    """Setting keys the page's files name: `data-key` attributes and `<code>` in the HTML,
    string literals in the JavaScript."""
    keys = set()
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    keys |= set(re.findall(r'data-key="([^"]+)"', page))
    keys |= {k for k in re.findall(r"<code>([^<]+)</code>", page) if SETTING.match(k)}
    for script in STATIC.glob("*.js"):
        keys |= {k for k in re.findall(r'"([a-z0-9_.]+)"', script.read_text(encoding="utf-8"))
                 if SETTING.match(k)}
    return keys


def help_texts():
    """`{id: text}` of the page's static help paragraphs (`<p id="...-help">`), tags removed."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    return {m[0]: html.unescape(re.sub(r"<[^>]+>", "", m[1]))
            for m in re.findall(r'<p id="([\w-]+-help)"[^>]*>(.*?)</p>', page, re.S)}


def test_every_setting_the_page_names_is_declared(settings):
    keys = page_setting_keys()
    assert {"general.backup_retention_count", "general.safety_copies_keep",
            "offsite.dir.path"} <= keys
    assert keys <= set(settings), f"the page names settings that do not exist: {keys - set(settings)}"


def test_the_page_inputs_have_the_settings_ranges(settings):
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    inputs = re.findall(r"<input [^>]*data-key=\"[^\"]+\"[^>]*>", page)
    checked = 0
    for tag in inputs:
        key = re.search(r'data-key="([^"]+)"', tag)[1]
        for attr, field in (("min", "minimum"), ("max", "maximum")):
            found = re.search(rf'\b{attr}="(\d+)"', tag)
            if found:
                checked += 1
                assert int(found[1]) == getattr(settings[key], field), (key, attr)
    assert checked >= 12


def test_the_page_forms_offer_the_settings_choices(settings):
    forms = (STATIC / "forms.js").read_text(encoding="utf-8")
    offered = re.findall(r'\["([\w.]+)", "[^"]*", "choice",\s*\{\s*choices: \[([^\]]*)\]', forms)
    assert len(offered) >= 3
    for key, choices in offered:
        assert tuple(re.findall(r'"([^"]*)"', choices)) == settings[key].choices, key


def described_keys():
    """`{help id: setting key}` of the inputs whose `aria-describedby` names a help paragraph."""
    found = {}
    for tag in re.findall(r"<input [^>]*>", (STATIC / "index.html").read_text(encoding="utf-8")):
        key = re.search(r'data-key="([^"]+)"', tag)
        described = re.search(r'aria-describedby="([^"]+)"', tag)
        if key and described:
            found.update({ident: key[1] for ident in described[1].split()})
    return found


def test_the_help_texts_agree_with_the_settings(settings):
    texts = help_texts()
    keys = described_keys()
    ranges = 0
    for ident, text in texts.items():
        # "(1–1000)" in the help of a setting's input: the range that setting accepts.
        for low, high in re.findall(r"\((\d+)[–-](\d+)\)", text):
            definition = settings[keys[ident]]
            assert (int(low), int(high)) == (definition.minimum, definition.maximum), ident
            ranges += 1
    assert ranges >= 1
    # What the page shows before the settings are loaded is their default.
    upload = texts["upload-help"]
    keep = re.search(r"Only the newest (\d+) uploads are kept", upload)
    assert keep and keep[1] == settings["general.safety_copies_keep"].default
    assert "general.safety_copies_keep" in upload and "never pruned" not in upload
    assert describe_schedule(DEFAULT_SCHEDULE) in texts["auto-help"]
    assert settings["general.auto_backup_schedule"].default == DEFAULT_SCHEDULE
    # Uploads and safety copies are kept by their own count, not by the retention rules.
    assert "general.safety_copies_keep" in texts["retention-help"]
