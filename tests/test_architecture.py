"""The layers of docs/DESIGN.md ("Architecture"): a module imports only from its layer or below.

Every import statement of every paperlib module counts, also those inside functions (a lazy
import is still a dependency). A new module must be placed in `LAYERS` before it can be imported.
Within a layer too, no two modules import each other, directly or round a longer circle, and no
module imports another's private (``_name``) attribute: what two modules share is public in the
lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import paperlib

PACKAGE = Path(paperlib.__file__).resolve().parent

#: bottom to top; the same table as docs/DESIGN.md's "Architecture" section. A layer is a folder
#: of paperlib (its subpackage), except the two bottom layers: foundation modules at the root.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"paperlib", "registry", "runtime", "gaussian", "outputs", "presets", "config"}),
    ("records and statistics", {"records", "progress", "stats"}),
    ("data", {"data"}),
    ("models", {"models"}),
    ("estimators and critics", {"estimators"}),
    ("objectives and training", {"training"}),
    ("evaluation", {"evaluation"}),
    ("studies", {"studies"}),
    ("reports", {"reports"}),
    ("notebook and run machinery", {"suite"}),
]
ROOT_LAYERS = 2


def layer_of(module: str) -> int:
    """Layer index of a dotted module name (a subpackage's modules share its layer)."""
    parts = module.split(".")
    key = "paperlib" if len(parts) == 1 else parts[1]
    for i, (_, names) in enumerate(LAYERS):
        if key in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: place it there")


def module_name(path: Path) -> str:
    parts = ["paperlib", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str | None = None) -> set[str]:
    """paperlib modules that `path` (the module `name`) imports anywhere in its body."""
    here = (name or module_name(path)).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .mod import y
                stem = package[: len(package) - node.level + 1]
                base = ".".join([*stem, *([base] if base else [])])
            if base == "paperlib":  # from paperlib import config, __version__
                out.update(
                    f"paperlib.{a.name}"
                    if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists()
                    else "paperlib"
                    for a in node.names
                )
            else:
                out.add(base)
    return {m for m in out if m == "paperlib" or m.startswith("paperlib.")}


def test_every_import_runs_down_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        for dep in sorted(imported(path)):
            if layer_of(dep) > layer_of(me):
                wrong.append(
                    f"{me} ({LAYERS[layer_of(me)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})"
                )
    assert not wrong, "imports against the layers of docs/DESIGN.md:\n" + "\n".join(wrong)


def test_the_layer_test_catches_an_upward_import(tmp_path):
    bad = tmp_path / "gaussian.py"
    bad.write_text("import torch\n\n\ndef f():\n    from paperlib.models import build_model\n")
    assert imported(bad, "paperlib.gaussian") == {"paperlib.models"}
    assert layer_of("paperlib.models") > layer_of("paperlib.gaussian")


def import_graph() -> dict[str, set[str]]:
    """module -> the paperlib modules it imports (anywhere in its body), for every module."""
    return {
        module_name(path): imported(path) - {module_name(path)}
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle of `graph`: its strongly connected components of more than one
    module (Tarjan's algorithm, iterative), each sorted, plus modules importing themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, deps = work[-1]
            dep = next(deps, None)
            if dep is not None:
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(graph.get(dep, ())))))
                elif dep in on_stack:
                    low[node] = min(low[node], index[dep])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return found


def private_imports(path: Path, name: str | None = None) -> list[str]:
    """``from paperlib.X import _private`` in `path` where X is another module (dunders such as
    ``__version__`` are public)."""
    me = name or module_name(path)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level:
            source = node.module or ""
            if not (source == "paperlib" or source.startswith("paperlib.")) or source == me:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    out.append(f"{me} imports {alias.name} from {source}")
    return out


#: private imports that cross modules and wait for their owner to make the name public; empty
#: since issue 23 (conversion and critics use evaluate's and mi's public helpers). Remove an
#: entry once its import is gone: the test fails on an entry that no longer applies.
PENDING_PRIVATE: set[str] = set()


def test_no_import_circle_among_paperlib_modules():
    found = circles(import_graph())
    assert not found, "modules that import each other (a lazy import counts too):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_no_module_imports_another_modules_private_name():
    found = {p for path in sorted(PACKAGE.rglob("*.py")) for p in private_imports(path)}
    new = sorted(found - PENDING_PRIVATE)
    assert not new, "private names imported across modules (make them public):\n" + "\n".join(new)
    stale = sorted(PENDING_PRIVATE - found)
    assert not stale, "fixed, so remove from PENDING_PRIVATE:\n" + "\n".join(stale)


def test_the_circle_and_private_checks_catch_what_they_should(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert circles(graph) == [["a", "b", "c"], ["e"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    lazy = tmp_path / "plots.py"
    lazy.write_text(
        "from paperlib import __version__\n\n\n"
        "def f():\n    from paperlib.reports.summary import _floors_of, table\n"
    )
    assert imported(lazy, "paperlib.reports.plots") == {"paperlib", "paperlib.reports.summary"}
    assert private_imports(lazy, "paperlib.reports.plots") == [
        "paperlib.reports.plots imports _floors_of from paperlib.reports.summary"
    ]


def test_the_design_doc_lists_the_same_layers():
    design = (PACKAGE.parent / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    section = design.split("## Architecture", 1)[1]
    for name, modules in LAYERS:
        assert name in section, name
        for m in modules - {"paperlib"}:
            assert f"`{m}`" in section, (name, m)


#: a module past this many lines usually holds two ideas (docs/STYLE.md); longer ones are listed
#: in `LONG_MODULES` with the reason that DESIGN's "Architecture" section gives for them
MAX_LINES = 600

#: module -> why it stays long (the same reason as DESIGN's list "Files kept over 600 lines")
LONG_MODULES: dict[str, str] = {
    "estimators.mi": "the estimator family, edited in another line of work; split by estimator after it",
    "estimators.instrument": "the I(z;s) instrument, edited in another line of work",
    "evaluation.evaluate": "every metric of DESIGN section 4 over one shared encode / collect / probe core",
    "suite.launch": "one command line: plan, submit, requeue and report cluster jobs",
    "suite.runner": "one command line: resolve, check and run the notebooks through papermill",
    "studies.mechanism": "one study (notebook 05): its plan, its runs and its series",
    "data.real": "the readers of the paper's real datasets, one per file format",
    "data.speech": "one synthesiser: speakers, phones and the source-filter rendering",
}


def module_lines() -> dict[str, int]:
    """Dotted name -> line count of every paperlib module (a package counts its __init__)."""
    return {
        module_name(path): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_is_longer_than_max_lines_without_a_reason():
    design = (PACKAGE.parent / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    section = design.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    sizes = module_lines()
    long = {m.split(".", 1)[1]: n for m, n in sizes.items() if n > MAX_LINES and "." in m}
    unlisted = sorted(f"{m} ({n} lines)" for m, n in long.items() if m not in LONG_MODULES)
    assert not unlisted, f"over {MAX_LINES} lines: split, or list with a reason:\n" + "\n".join(
        unlisted
    )
    stale = sorted(m for m in LONG_MODULES if m not in long)
    assert not stale, "no longer over the limit, so remove from LONG_MODULES: " + ", ".join(stale)
    undocumented = sorted(m for m in LONG_MODULES if f"`{m.replace('.', '/')}.py`" not in section)
    assert not undocumented, "give the reason in DESIGN's Architecture section: " + ", ".join(
        undocumented
    )


def test_the_layer_table_names_every_module():
    """Every module file (a subpackage by its folder) is in `LAYERS` and in DESIGN's table."""
    design = (PACKAGE.parent / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    section = design.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    listed = {m for _, modules in LAYERS for m in modules}
    on_disk = {
        path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.rglob("*.py")
    }
    on_disk = {"paperlib" if m == "__init__" else m for m in on_disk}
    assert on_disk - listed == set(), f"modules in no layer of LAYERS: {sorted(on_disk - listed)}"
    assert listed - on_disk == set(), f"LAYERS names missing modules: {sorted(listed - on_disk)}"
    for m in sorted(on_disk - {"paperlib"}):
        assert any(f"`{m}`" in line for line in table), f"DESIGN's layer table does not name {m}"


def test_ls_paperlib_shows_the_layers():
    """Above the root layers every layer is one folder of paperlib, and every folder a layer; the
    root holds only foundation, records and statistics modules."""
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    for name, modules in LAYERS[ROOT_LAYERS:]:
        assert len(modules) == 1 and modules <= folders, f"layer {name!r} is not one folder"
    root_modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert root_modules <= set().union(*(m for _, m in LAYERS[:ROOT_LAYERS])), sorted(
        root_modules - set().union(*(m for _, m in LAYERS[:ROOT_LAYERS]))
    )
    assert folders <= {m for _, ms in LAYERS for m in ms}, "a folder of paperlib is in no layer"


def test_builtin_component_names_are_registered():
    from paperlib.studies import components

    for kind, builtin in (
        ("dataset", components.BUILTIN_DATASETS),
        ("model", components.BUILTIN_MODELS),
        ("objective", components.BUILTIN_OBJECTIVES),
    ):
        if kind == "dataset":
            from paperlib.data import _import_all
        elif kind == "model":
            from paperlib.models import _import_all
        else:
            _import_all = lambda: None  # noqa: E731  (objectives register on import)
        _import_all()
        assert set(builtin) <= set(components.registry(kind).names()), kind
