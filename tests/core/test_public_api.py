"""The boundary: `mission_control.api` is the public face, the package loads it lazily, the
modules import one another without a cycle, and built-in plugins use only the public face."""
import ast
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import mission_control
from mission_control import api, hookspecs
from mission_control.hookspecs import PluginContext

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mission_control"
PLUGINS = ROOT / "plugins"
#: What a module of the package may import from the package itself (not a submodule).
PACKAGE_NAMES = {"NAME", "__version__", "hookimpl"}


def run_python(*args):
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def modules_of(folder, dotted):
    """`{dotted module name: (path, is_package)}` for every ``*.py`` under `folder`."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        parts = [dotted, *path.relative_to(folder).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def module_level_imports(tree):
    """The import statements run when the module is imported: not those inside a function or a
    class body (`if`/`try` blocks at module level count, `if TYPE_CHECKING:` too)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            pending.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ExceptHandler):
            pending.extend(node.body)


def imported(node, module, is_package):
    """`(base, names)` of an import statement in `module`: the absolute module it imports from,
    and the names it takes (for ``import a.b``: base ``a.b``, no names)."""
    if isinstance(node, ast.Import):
        return [(alias.name, ()) for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module
    return [(base, tuple(alias.name for alias in node.names))]


def import_graph():
    """`{module: {modules it imports at module level}}` among mission_control's modules."""
    modules = modules_of(PACKAGE, "mission_control")
    graph = {}
    for module, (path, is_package) in modules.items():
        edges = set()
        for node in module_level_imports(ast.parse(path.read_text(), str(path))):
            for base, names in imported(node, module, is_package):
                for name in names or (None,):
                    target = f"{base}.{name}" if name else base
                    while target and target not in modules:  # `from .x import f` -> `.x`
                        target = target.rpartition(".")[0]
                    if target and target != module:
                        edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[module] = "done"
        stack.pop()
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_importing_the_marker_loads_at_most_four_of_our_modules():
    done = run_python("-X", "importtime", "-c", "from mission_control import hookimpl")
    names = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:")]
    ours = [n for n in names if n == "mission_control" or n.startswith("mission_control.")]
    assert "mission_control" in ours
    assert len(ours) <= 4, ours


def test_the_package_face_is_the_api_and_loads_it_only_when_asked():
    assert mission_control.__all__ == api.__all__
    assert len(set(api.__all__)) == len(api.__all__)
    for name in api.__all__:
        assert getattr(mission_control, name) is getattr(api, name), name
    assert set(api.__all__) <= set(dir(mission_control))
    star = {}
    exec("from mission_control import *", star)
    assert {name: star[name] for name in api.__all__} == {n: getattr(api, n) for n in api.__all__}
    # BackupInfo is what hooks are handed; it is public now.
    assert api.BackupInfo.__module__ == "mission_control.backup.names"
    # Submodules and unknown names do not load the api (nor the service behind it).
    script = ("import sys, mission_control\n"
              "from mission_control.backup import names\n"
              "assert not hasattr(mission_control, 'no_such_name')\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mission_control'))")
    done = run_python("-c", script)
    assert done.stdout.strip() == ("['mission_control', 'mission_control.backup', "
                                   "'mission_control.backup.names']")


def test_no_import_cycle_among_the_modules():
    graph = import_graph()
    assert {"mission_control", "mission_control.core", "mission_control.web.app"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert graph["mission_control"] == set(), "the package face imports nothing at module level"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_modules_take_only_the_marker_and_identity_from_the_package():
    modules = modules_of(PACKAGE, "mission_control")
    for module, (path, is_package) in modules.items():
        if module == "mission_control.api":
            continue  # the public face re-exports the package's names
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for base, names in imported(node, module, is_package):
                if base != "mission_control":
                    continue
                taken = {n for n in names if f"mission_control.{n}" not in modules}
                assert names and taken <= PACKAGE_NAMES, (
                    f"{path.relative_to(ROOT)}:{node.lineno} imports "
                    f"{sorted(taken - PACKAGE_NAMES) or 'the package'} from the package; "
                    "import it from its own module")


def test_builtin_plugins_import_only_the_public_face():
    modules = modules_of(PLUGINS, "mission_control.builtins")
    assert len(modules) > 10
    for module, (path, is_package) in modules.items():
        own = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for base, _ in imported(node, module, is_package):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if getattr(node, "level", 0):
                    # a plugin package's own helpers (plugins/pitr/), never another built-in
                    assert own != "mission_control.builtins" and base.startswith(own), where
                elif base == "mission_control" or base.startswith("mission_control."):
                    assert base in ("mission_control", "mission_control.api"), (
                        f"{where} imports {base}: plugins use mission_control(.api) only")


def hookspec_functions():
    return [fn for _, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "mission_control_spec")]


def test_every_hookspec_is_typed_and_hands_a_plugin_context():
    specs = hookspec_functions()
    assert len(specs) >= 10
    for spec in specs:
        hints = typing.get_type_hints(spec)  # resolves every annotation: none is a dangling name
        assert hints["mc"] is PluginContext, spec.__name__
        assert set(inspect.signature(spec).parameters) <= set(hints), spec.__name__
    assert "TYPE_CHECKING" not in Path(hookspecs.__file__).read_text()


def declared(protocol):
    return set(typing.get_type_hints(protocol)) | {
        name for name in dir(protocol) if not name.startswith("_")}


def test_a_mission_control_is_a_plugin_context(mc):
    assert isinstance(mc, PluginContext)
    for name, kind in typing.get_type_hints(PluginContext).items():
        if getattr(kind, "_is_protocol", False):
            assert isinstance(getattr(mc, name), kind), name


def mc_uses(tree):
    """`(attribute, sub-attribute or None, line)` for every ``mc.x`` / ``self.mc.x(.y)``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        root = node.value
        if (isinstance(root, ast.Name) and root.id == "mc") or (
                isinstance(root, ast.Attribute) and root.attr == "mc"
                and isinstance(root.value, ast.Name) and root.value.id == "self"):
            yield node.attr, node, node.lineno


def test_the_builtins_use_only_what_plugin_context_declares():
    hints = typing.get_type_hints(PluginContext)
    seen = set()
    for path in sorted(PLUGINS.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: parent for parent in ast.walk(tree)
                   for child in ast.iter_child_nodes(parent)}
        for name, node, line in mc_uses(tree):
            where = f"{path.relative_to(ROOT)}:{line}"
            assert name in hints, f"{where} uses mc.{name}, which PluginContext does not declare"
            seen.add(name)
            parent = parents.get(node)
            kind = hints[name]
            if isinstance(parent, ast.Attribute) and getattr(kind, "_is_protocol", False):
                assert parent.attr in declared(kind), (
                    f"{where} uses mc.{name}.{parent.attr}, which {kind.__name__} does not declare")
    assert {"settings", "offsite", "audit", "clock", "outbox", "config"} <= seen
