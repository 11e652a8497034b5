"""Architecture checks: the layering rules of zoo, export and serving, enforced statically.

Pure `ast` over the source files (nothing here imports TensorFlow or the project), so
this file runs in a fraction of a second. Four rules:

1. No module outside `zoo/tasks/` branches on a task's name: it asks the task object.
2. No import cycles between the project's modules (module-level imports).
3. Imports flow one way: serving <- nothing; core (zoo.*) <- export <- command line
   (`zoo.cli`, `zoo.demo`), which alone may import all three. One exception: export
   may import `serving.config` and `serving.protos` (the server's config files).
4. No `try: import <project module> except ImportError`: a missing piece of the
   project is an error at import, not a quietly different code path.

Every `check_*` function takes the repository root and returns a list of messages,
one per violation, each naming the file, the line, the rule and the fix. The
`*_can_fail` tests run each check on a small synthetic tree to prove it reports
violations, and on a clean one to prove it stays quiet.
"""

from __future__ import annotations

import ast
import functools
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("zoo", "export", "serving")  # benchmarks/ and tests/ are not checked
KNOWN_TASKS = frozenset({"image_classification", "text_classification"})
COMMAND_LINE = ("zoo.cli", "zoo.demo")  # the only modules that may import all three packages
CAUGHT_BY = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


# --------------------------------------------------------------------------- helpers


def project_files(root=ROOT, packages=PACKAGES) -> list[tuple[str, Path]]:
    """(dotted module name, path) of every .py file under the given top-level packages."""
    root = Path(root)
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


@functools.lru_cache(maxsize=None)
def _parse_cached(path: str, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)


def parse(path: Path) -> ast.Module:
    stat = Path(path).stat()
    return _parse_cached(str(path), stat.st_mtime_ns, stat.st_size)


def where(root, path: Path, node) -> str:
    return f"{Path(path).relative_to(root).as_posix()}:{node.lineno}"


def under(name: str, prefixes) -> bool:
    """True when dotted `name` is one of `prefixes` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def final_id(node) -> str | None:
    """`task` for `task`, `info.task` and `self.spec.task`."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def is_module(root, dotted: str) -> bool:
    base = Path(root).joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or base.is_dir()


def resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of `from <level dots><name> import ...` written in `module`."""
    if not level:
        return name or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(parts):
        return ""  # beyond the top-level package: an ImportError in Python, none of ours
    parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([name] if name else []))


def dynamic_import(node) -> str | None:
    """For `__import__(...)` / `importlib.import_module(...)`: the module's name when it is a
    literal, "" when it is not; None for any other node."""
    if not isinstance(node, ast.Call) or not node.args or final_id(node.func) not in ("__import__", "import_module"):
        return None
    arg = node.args[0]
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return ""
    name = arg.value
    if name.startswith("."):  # import_module(".x", package="a.b")
        package = next((k.value for k in node.keywords if k.arg == "package"), None)
        package = node.args[1] if len(node.args) > 1 else package
        if not (isinstance(package, ast.Constant) and isinstance(package.value, str)):
            return ""
        level = len(name) - len(name.lstrip("."))
        return resolve_relative(package.value, True, level, name.lstrip(".") or None)
    return name


def import_targets(root, module: str, is_package: bool, node) -> list[str]:
    """The modules an import statement (or a literal dynamic import) names.

    `from a.b import c` names `a.b.c` when that is a module or package, else `a.b`.
    """
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = resolve_relative(module, is_package, node.level, node.module)
        if not base:
            return []
        targets = []
        for alias in node.names:
            sub = f"{base}.{alias.name}" if base else alias.name
            targets.append(sub if alias.name != "*" and is_module(root, sub) else base)
        return targets
    name = dynamic_import(node)
    return [name] if name else []


def _is_type_checking(test) -> bool:
    return final_id(test) == "TYPE_CHECKING"


def walk_skipping_defs(nodes):
    """Every node in `nodes` and below that runs when they run: not inside the bodies of
    functions, classes, lambdas or `if TYPE_CHECKING:`."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(root, module: str, path: Path, *, module_level_only=False) -> list[tuple[ast.AST, str]]:
    """[(node, imported module)] for every import in a file, sorted by line.

    module_level_only: only the imports that run when the module is imported
    (top level, including inside top-level if/try/with blocks).
    """
    tree = parse(path)
    nodes = walk_skipping_defs(tree.body) if module_level_only else ast.walk(tree)
    is_package = path.name == "__init__.py"
    found = dict.fromkeys((n, t) for n in nodes for t in import_targets(root, module, is_package, n))
    return sorted(found, key=lambda item: (item[0].lineno, item[1]))


def _fail_if(violations: list[str], rule: str) -> None:
    if violations:
        pytest.fail(f"{len(violations)} violation(s) of {rule}:\n" + "\n".join(violations), pytrace=False)


# --------------------------------------------------------------------------- rule 1: task names


def task_names(root=ROOT) -> frozenset[str]:
    """The registered task names, read statically from zoo/tasks/*.py.

    KNOWN_TASKS, plus every non-empty string assigned to a class attribute `name` of a
    class in zoo/tasks, plus `name="..."` (or the first positional argument, when the
    class's first field is `name`) in calls of those classes.
    """
    names = set(KNOWN_TASKS)
    trees = [parse(p) for p in sorted((Path(root) / "zoo" / "tasks").rglob("*.py"))]
    classes, name_first = set(), set()
    for tree in trees:
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            classes.add(cls.name)
            fields = [s.target.id for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            if fields[:1] == ["name"]:
                name_first.add(cls.name)
            for stmt in cls.body:
                if not isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    continue
                targets, value = getattr(stmt, "targets", [getattr(stmt, "target", None)]), stmt.value
                if any(final_id(t) == "name" for t in targets) and isinstance(value, ast.Constant):
                    names.add(value.value)
    for tree in trees:
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and final_id(n.func) in classes):
            values = [k.value for k in call.keywords if k.arg == "name"]
            if final_id(call.func) in name_first and call.args:
                values.append(call.args[0])
            names.update(v.value for v in values if isinstance(v, ast.Constant))
    return frozenset(n for n in names if isinstance(n, str) and n.strip())


def _spelled_tasks(node, tasks, aliases) -> list[str]:
    """The task names a node spells: a literal, a module constant bound to one, or a
    tuple/list/set (or set()/frozenset()/tuple() of one) of those."""
    if isinstance(node, ast.Constant) and node.value in tasks:
        return [node.value]
    if isinstance(node, ast.Name) and node.id in aliases:
        return [aliases[node.id]]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [t for e in node.elts for t in _spelled_tasks(e, tasks, aliases)]
    if isinstance(node, ast.Call) and final_id(node.func) in ("set", "frozenset", "tuple", "list") and node.args:
        return _spelled_tasks(node.args[0], tasks, aliases)
    return []


def _pattern_tasks(pattern, tasks) -> list[str]:
    return [n.value.value for n in ast.walk(pattern)
            if isinstance(n, ast.MatchValue) and isinstance(n.value, ast.Constant) and n.value.value in tasks]


def check_task_name_branching(root=ROOT) -> list[str]:
    """Rule 1: outside zoo/tasks/, no comparison, dict key or match case on a task name."""
    root, tasks = Path(root), task_names(root)
    rule = "[rule 1: only zoo/tasks/ knows task names]"
    fix = ("Fix: move the task-specific behaviour into the task object in zoo/tasks/ (a method or "
           "attribute of its Task) and call it through get_task(...), instead of branching on the name.")
    violations = []
    for module, path in project_files(root):
        if under(module, ("zoo.tasks",)):
            continue
        tree = parse(path)
        aliases = {t.id: s.value.value for s in tree.body if isinstance(s, ast.Assign)
                   and isinstance(s.value, ast.Constant) and s.value.value in tasks
                   for t in s.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                found = [t for side in [node.left, *node.comparators] for t in _spelled_tasks(side, tasks, aliases)]
                what = f"compares with the task name(s) {sorted(set(found))}"
            elif isinstance(node, ast.Dict):
                found = [t for k in node.keys if k is not None for t in _spelled_tasks(k, tasks, aliases)]
                what = f"is a dict keyed by task name(s) {sorted(set(found))} (a hand-kept task table)"
            elif isinstance(node, ast.Call) and final_id(node.func) == "dict":
                found = [k.arg for k in node.keywords if k.arg in tasks]
                what = f"is a dict keyed by task name(s) {sorted(set(found))} (a hand-kept task table)"
            elif isinstance(node, ast.Match):
                found = [t for case in node.cases for t in _pattern_tasks(case.pattern, tasks)]
                what = f"matches on the task name(s) {sorted(set(found))}"
            else:
                continue
            if found:
                violations.append(f"{where(root, path, node)}: {rule} {module} {what}. {fix}")
    return violations


# --------------------------------------------------------------------------- rule 2: cycles


def import_graph(root=ROOT) -> dict[str, dict[str, str]]:
    """{module: {imported project module: "file:line" of the first such import}} for the
    imports that run at module import time. Edges to the module's own ancestor packages
    are left out (Python imports them first anyway)."""
    root = Path(root)
    files = project_files(root)
    modules = {m for m, _ in files}
    graph = {m: {} for m in modules}
    for module, path in files:
        for node, target in imports_of(root, module, path, module_level_only=True):
            parts = target.split(".")
            hit = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules), None)
            if hit is None or hit == module or module.startswith(hit + "."):
                continue
            graph[module].setdefault(hit, where(root, path, node))
    return graph


def strongly_connected(graph) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def shortest_cycle(graph, start, allowed) -> list[str]:
    """The shortest path start -> ... -> start within `allowed` (breadth first)."""
    parent, frontier = {}, [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if w in allowed and w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    return []


def check_import_cycles(root=ROOT) -> list[str]:
    """Rule 2: no cycles among module-level imports; one message per distinct cycle."""
    graph = import_graph(root)
    violations, seen = [], set()
    for component in strongly_connected(graph):
        for start in component:
            cycle = shortest_cycle(graph, start, set(component))
            ring = cycle[:-1]
            i = ring.index(min(ring))
            cycle = ring[i:] + ring[:i] + [ring[i]]  # the same cycle from any start reads the same
            if tuple(cycle) in seen:
                continue
            seen.add(tuple(cycle))
            steps = "\n".join(f"    {graph[a][b]}: {a} imports {b}" for a, b in zip(cycle, cycle[1:]))
            violations.append(
                f"{graph[cycle[0]][cycle[1]]}: [rule 2: no import cycles] {' -> '.join(cycle)}\n{steps}\n"
                "  Fix: move what these modules share into a module that imports none of them, or "
                "invert one dependency (the lower module registers itself, the higher one looks it up); "
                "hiding the import inside a function only hides the cycle.")
    return violations


# --------------------------------------------------------------------------- rule 3: direction


def layer(module: str) -> str:
    if under(module, ("serving",)):
        return "serving"
    if under(module, ("export",)):
        return "export"
    if under(module, COMMAND_LINE):
        return "command line"
    return "core"  # zoo and every zoo.* module that is not the command line


FORBIDDEN = {
    "serving": (("zoo", "export"),
                "serving stands alone: copy the small piece it needs into serving/, or move the "
                "wiring that needs both into zoo.cli."),
    "core": (("export", "serving") + COMMAND_LINE,
             "the core must not know who uses it: let export/serving/zoo.cli call into the core "
             "(or register themselves with it), and wire the pieces together in zoo.cli."),
    "export": (("serving",) + COMMAND_LINE,
               "export must not depend on serving or the command line: move the shared code into "
               "export or the core, and the wiring into zoo.cli."),
    "command line": ((), ""),
}

# What a layer may import although FORBIDDEN bans the package around it. export writes
# models.config and batching_parameters.txt, which serving reads: one writer, beside the
# reader and built on the same protos, beats a second copy in export. serving.config
# imports nothing of zoo or export, so serving still stands alone; the rest of serving
# (server, client, ...) stays out of export's reach.
ALLOWED = {
    "export": ("serving.config", "serving.protos"),
}


def check_import_direction(root=ROOT) -> list[str]:
    """Rule 3: every import (function-level and literal dynamic ones too) flows one way."""
    root = Path(root)
    violations = []
    for module, path in project_files(root):
        banned, fix = FORBIDDEN[layer(module)]
        allowed = ALLOWED.get(layer(module), ())
        but = f" (but {', '.join(allowed)})" if allowed else ""
        for node, target in imports_of(root, module, path):
            if under(target, banned) and not under(target, allowed):
                violations.append(
                    f"{where(root, path, node)}: [rule 3: imports flow one way] {module} ({layer(module)}) "
                    f"imports {target}; {layer(module)} must not import {', '.join(banned)}{but}. Fix: {fix}")
    return violations


# --------------------------------------------------------------------------- rule 4: optional imports


def _catches_import_errors(handlers) -> str | None:
    """The handler (as written) that would swallow an ImportError, or None."""
    for handler in handlers:
        if handler.type is None:
            return "bare except"
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        caught = [final_id(k) for k in kinds if final_id(k) in CAUGHT_BY]
        if caught:
            return f"except {caught[0]}"
    return None


def _guarded_blocks(tree):
    """(statements, how they are guarded) for every try/except or contextlib.suppress(...)
    block that swallows an ImportError."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            how = _catches_import_errors(node.handlers)
            if how:
                yield node.body, how
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and final_id(call.func) == "suppress" and any(
                        final_id(a) in CAUGHT_BY for a in call.args):
                    yield node.body, f"suppress({', '.join(filter(None, map(final_id, call.args)))})"
                    break


def check_optional_project_imports(root=ROOT) -> list[str]:
    """Rule 4: no import of a project module whose ImportError is caught."""
    root = Path(root)
    rule = "[rule 4: the project's own imports are never optional]"
    violations = {}
    for module, path in project_files(root):
        is_package = path.name == "__init__.py"
        for body, how in _guarded_blocks(parse(path)):
            for node in walk_skipping_defs(body):
                targets = sorted({t for t in import_targets(root, module, is_package, node) if under(t, PACKAGES)})
                if targets:
                    what = f"imports project module {', '.join(targets)} under {how}"
                elif dynamic_import(node) == "":
                    what = (f"imports a module whose name is not a literal under {how} (it can be a project "
                            f"module, e.g. export.cli; this check cannot prove otherwise)")
                else:
                    continue
                violations.setdefault(where(root, path, node), (
                    f"{where(root, path, node)}: {rule} {module} {what}: a missing piece of the project "
                    "must be an error at import, not a quietly different code path. Fix: import it "
                    "plainly, outside the try (by its literal name); if a feature is optional, decide "
                    "by configuration, not by catching ImportError."))
    return [violations[k] for k in sorted(violations, key=lambda s: (s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])))]


# --------------------------------------------------------------------------- the rules on the real tree


def test_no_task_name_branching_outside_tasks():
    _fail_if(check_task_name_branching(), "rule 1 (only zoo/tasks/ knows task names)")


def test_no_import_cycles():
    _fail_if(check_import_cycles(), "rule 2 (no import cycles)")


def test_imports_flow_one_way():
    _fail_if(check_import_direction(), "rule 3 (imports flow one way)")


def test_no_optional_project_imports():
    _fail_if(check_optional_project_imports(), "rule 4 (no try/except ImportError around project imports)")


def test_the_checks_see_the_project():
    # A check that scans nothing passes everything: make sure the tree is where we look.
    modules = {m for m, _ in project_files()}
    assert {"zoo", "export", "serving"} <= modules, f"no zoo/export/serving packages under {ROOT}"
    assert KNOWN_TASKS <= task_names()


# --------------------------------------------------------------------------- the checks can fail


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    for package in PACKAGES:  # every tree has the three packages
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def assert_reported(violations: list[str], expected: list[str], rule: str) -> None:
    """Each expected "path:line" is reported for `rule`, and nothing else is."""
    text = "\n".join(violations)
    for location in expected:
        assert any(v.startswith(location + ":") for v in violations), f"{location} not reported:\n{text}"
    assert all(rule in v and "Fix:" in v for v in violations), text
    assert len(violations) == len(expected), text


TASKS_PACKAGE = {
    "zoo/tasks/base.py": """
        class Task:
            name: str = ""
            def metrics(self):
                return [Accuracy(name="accuracy")]
        """,
    "zoo/tasks/audio.py": """
        from zoo.tasks.base import Task
        class AudioTagging(Task):
            name = "audio_tagging"
        def pick(task):
            return {"audio_tagging": 1}[task] if task == "audio_tagging" else 0  # allowed in zoo/tasks
        """,
    "zoo/tasks/__init__.py": """
        import dataclasses
        @dataclasses.dataclass
        class Spec:
            name: str
            input_name: str
        SPECS = [Spec("speech_recognition", "audio"), Spec(name="vector_regression", input_name="x")]
        """,
}

ALLOWED_TASK_USES = {
    "zoo/models/cnn.py": """
        @register_model(task="image_classification", default_dataset="digits")
        def cnn(): ...
        register_dataset("topics", task="text_classification")
        """,
    "zoo/training/trainer.py": """
        def fit(info, spec, metric, task):
            if info.task != spec.task:
                raise ValueError(metric == "accuracy")
            task = "text_classification" if metric else "image_classification"
            return get_task(info.task).loss(), TASKS[task]
        """,
}


def test_task_names_are_read_from_zoo_tasks(tmp_path):
    root = write_tree(tmp_path, TASKS_PACKAGE)
    assert task_names(root) == KNOWN_TASKS | {"audio_tagging", "speech_recognition", "vector_regression"}


def test_task_name_check_can_fail(tmp_path):
    root = write_tree(tmp_path, {**TASKS_PACKAGE, **ALLOWED_TASK_USES,
        "zoo/data/pipeline.py": """
            def load(info):
                if info.task == "text_classification":
                    return 1
            """,
        "zoo/benchmark.py": """
            TEXT = "speech_recognition"
            def f(task, spec):
                a = task in ("image_classification", "other")
                b = spec.task != TEXT
                c = spec.task in frozenset({"vector_regression"})
            """,
        "export/signatures.py": """
            TASKS = {
                "image_classification": 1,
                "text_classification": 2,
            }
            OTHER = dict(audio_tagging=3)
            """,
        "serving/cli.py": """
            def show(task):
                match task:
                    case "x" | "audio_tagging":
                        pass
            """,
    })
    assert_reported(check_task_name_branching(root), [
        "zoo/data/pipeline.py:2", "zoo/benchmark.py:3", "zoo/benchmark.py:4", "zoo/benchmark.py:5",
        "export/signatures.py:1", "export/signatures.py:5", "serving/cli.py:2",
    ], "[rule 1:")
    clean = write_tree(tmp_path / "clean", {**TASKS_PACKAGE, **ALLOWED_TASK_USES})
    assert check_task_name_branching(clean) == []


def test_import_cycle_check_can_fail(tmp_path):
    root = write_tree(tmp_path, {
        # two modules importing each other, one of them relatively, one inside a top-level if
        "export/signatures.py": """
            import os
            if os.environ:
                from export import text_signatures
            """,
        "export/text_signatures.py": "from .signatures import TASKS\n",
        # a cycle through a package __init__, with an import inside a top-level try
        "zoo/x.py": """
            try:
                from export import export_saved_model
            except ValueError:
                pass
            """,
        "export/__init__.py": "from export.y import export_saved_model\n",
        "export/y.py": "import zoo.x\n",
    })
    violations = check_import_cycles(root)
    assert_reported(violations, ["export/signatures.py:3", "export/__init__.py:1"], "[rule 2:")
    text = "\n".join(violations)
    assert "export.signatures -> export.text_signatures -> export.signatures" in text
    assert "export -> export.y -> zoo.x -> export" in text
    assert "export/text_signatures.py:1: export.text_signatures imports export.signatures" in text


def test_import_cycle_check_passes_a_clean_tree(tmp_path):
    root = write_tree(tmp_path, {
        "zoo/a.py": "import zoo.b\n",
        "zoo/b.py": "def f():\n    import zoo.a\n",  # function level: not a cycle at import
        "zoo/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import zoo.d\n",
        "zoo/d.py": "import zoo.c\n",
        "zoo/e.py": "class E:\n    import zoo.f\n",
        "zoo/f.py": "import zoo.e\n",
        # a package and its submodules: edges up to an ancestor are not cycles
        "zoo/data/__init__.py": "from zoo.data.pipeline import load\n",
        "zoo/data/info.py": "",
        "zoo/data/pipeline.py": """
            import zoo
            from zoo.data import info
            from zoo.data import load_helper
            from . import info
            """,
    })
    assert check_import_cycles(root) == []


def test_import_direction_check_can_fail(tmp_path):
    root = write_tree(tmp_path, {
        "zoo/cli/__init__.py": "",
        "serving/cli.py": "def f():\n    from export.signatures import decode_image\n",
        "serving/x.py": "import zoo\n",
        "zoo/training/t.py": "import importlib\nrest = importlib.import_module('serving.client')\n",
        "zoo/registry.py": "from zoo import cli\n",
        "zoo/models/m.py": "def f():\n    from export import x\n",
        "zoo/__init__.py": "from zoo import demo\n",
        "zoo/demo.py": "",
        "export/a.py": "from serving import Client\n",
        "export/b.py": "from zoo.cli import main\n",
        "export/c.py": "__import__('zoo.demo')\n",
        "export/d.py": "from ..serving import rest\n",  # climbs out of the project: not one of ours
        # export may use serving's config files module and protos, and nothing else of serving.
        "serving/config.py": "",
        "serving/client.py": "",
        "serving/configuration.py": "",
        "export/e.py": "from serving.config import write_models_config\nfrom serving.client import Client\n",
        "export/f.py": "from serving import config, client\nimport serving.configuration\n",
        "export/g.py": "def f():\n    import serving\n",
    })
    assert_reported(check_import_direction(root), [
        "serving/cli.py:2", "serving/x.py:1", "zoo/training/t.py:2", "zoo/registry.py:1", "zoo/models/m.py:2",
        "zoo/__init__.py:1", "export/a.py:1", "export/b.py:1", "export/c.py:1",
        "export/e.py:2", "export/f.py:1", "export/f.py:2", "export/g.py:2",
    ], "[rule 3:")


def test_import_direction_check_passes_a_clean_tree(tmp_path):
    root = write_tree(tmp_path, {
        "zoo/cli/__init__.py": "import export, serving\nfrom zoo import training\n",
        "zoo/cli/train.py": "from export import cli\nfrom serving.client import Client\nimport zoo.demo\n",
        "zoo/demo.py": "from export import export_saved_model\nfrom serving import Client\n",
        "zoo/__init__.py": """
            import importlib
            _EXPORTS = {"train": "zoo.training", "serve": "serving.server"}  # strings, not imports
            def __getattr__(name):
                return importlib.import_module(_EXPORTS[name])
            """,
        "zoo/training/t.py": "from zoo import registry, data\nfrom ..data import pipeline\n",
        "export/a.py": "from zoo.registry import build_model\nimport zoo.data\nfrom . import b\n",
        # The one exception for export: serving's config files module and its protos.
        "export/b.py": """
            from serving.config import write_models_config
            from serving import config
            import serving.config
            from serving.protos import tf_serving_config_pb2
            from serving.protos.tf_serving_config_pb2 import BatchingParameters
            """,
        "serving/config.py": "from serving.protos import tf_serving_config_pb2\n",
        "serving/protos/tf_serving_config_pb2.py": "",
        "serving/x.py": "import grpc\nfrom serving.errors import ServingError\nfrom .rest import app\n",
    })
    assert check_import_direction(root) == []


def test_optional_import_check_can_fail(tmp_path):
    root = write_tree(tmp_path, {
        "zoo/cli.py": """
            def build():
                for module in ("export.cli", "serving.cli"):
                    try:
                        mod = __import__(module, fromlist=["x"])
                    except ImportError:
                        continue
            """,
        "zoo/demo.py": "try:\n    from export import export_saved_model\nexcept ImportError:\n    pass\n",
        "export/a.py": "try:\n    import serving.client\nexcept ModuleNotFoundError:\n    pass\n",
        "serving/b.py": "try:\n    x = 1\n    import zoo\nexcept:\n    pass\n",
        "zoo/c.py": """
            import importlib
            try:
                importlib.import_module('export.cli')
            except (OSError, Exception):
                pass
            """,
        "zoo/d.py": """
            try:
                try:
                    from .data import x
                except ValueError:
                    pass
            except BaseException:
                pass
            """,
        "export/e.py": "import contextlib\nwith contextlib.suppress(ImportError):\n    import export.f\n",
    })
    assert_reported(check_optional_project_imports(root), [
        "zoo/cli.py:4", "zoo/demo.py:2", "export/a.py:2", "serving/b.py:3", "zoo/c.py:3", "zoo/d.py:3",
        "export/e.py:3",
    ], "[rule 4:")


def test_optional_import_check_passes_a_clean_tree(tmp_path):
    root = write_tree(tmp_path, {
        "zoo/a.py": """
            from zoo import registry
            try:
                import yaml  # a third-party extra may be optional
            except ImportError:
                yaml = None
            try:
                from zoo import data
            except ValueError:  # does not swallow an ImportError
                pass
            try:
                registry.build()
            except Exception:
                pass
            try:
                def later():
                    import export  # runs when called, not under this try
            except ImportError:
                pass
            """,
    })
    assert check_optional_project_imports(root) == []
