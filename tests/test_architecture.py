"""The layers of docs/DESIGN.md ("Architecture"): a module imports only from its layer or below.

Every import statement of every paperlib module counts, also those inside functions (a lazy
import is still a dependency). A new module must be placed in `LAYERS` before it can be imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import paperlib

PACKAGE = Path(paperlib.__file__).resolve().parent

#: bottom to top; the same table as docs/DESIGN.md's "Architecture" section
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"paperlib", "registry", "runtime", "gaussian", "outputs", "config"}),
    ("records and statistics", {"records", "progress", "stats"}),
    ("data", {"data"}),
    ("models", {"models"}),
    ("estimators and critics", {"mi", "critics", "instrument"}),
    ("objectives", {"regularizers"}),
    ("training", {"train"}),
    ("evaluation", {"evaluate", "conversion", "s_content", "qualify"}),
    ("experiments and reports", {"experiment", "mechanism", "components", "plots", "summary"}),
    ("notebook support", {"plan", "runner", "launch", "notebooks", "params", "colab"}),
]


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
            if base == "paperlib":  # from paperlib import evaluate, __version__
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


def test_the_design_doc_lists_the_same_layers():
    design = (PACKAGE.parent / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    section = design.split("## Architecture", 1)[1]
    for name, modules in LAYERS:
        assert name in section, name
        for m in modules - {"paperlib"}:
            assert f"`{m}`" in section, (name, m)


def test_builtin_component_names_are_registered():
    from paperlib import components

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
