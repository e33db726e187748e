"""Notebook parameters: one declared spec per notebook, validated before and inside each run.

papermill only *warns* about a parameter the notebook does not declare, and a misspelled name
silently becomes a new variable. So every notebook calls `check_params` in the cell after its
``parameters`` cell, and `paperlib.runner` checks ``-p`` overrides against the same spec before
starting a kernel. Both fail with a message naming the parameter and the accepted values.

``None`` for a parameter means "the profile's default", resolved by `check_params`.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlib.components import BUILTIN_DATASETS as DATASETS
from paperlib.components import registered
from paperlib.config import PROFILES

_PACKAGE = Path(__file__).resolve().parent
#: the notebooks' sources in a source checkout (a pyproject.toml beside the package)
CHECKOUT_NOTEBOOKS = _PACKAGE.parent / "notebooks"
#: the copy that a wheel ships (pyproject maps notebooks/ to the package paperlib._notebooks)
PACKAGED_NOTEBOOKS = _PACKAGE / "_notebooks"


def _has_sources(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("[0-9][0-9]_*.py"))


def find_notebook_dir() -> Path:
    """The folder of the notebooks' percent-format sources ``NN_name.py``.

    A source checkout's ``notebooks/`` first, else the copy inside an installed wheel.

    Raises
    ------
    FileNotFoundError
        Naming both places that were searched, when neither holds a notebook source.
    """
    checkout = CHECKOUT_NOTEBOOKS if (_PACKAGE.parent / "pyproject.toml").exists() else None
    for folder in (checkout, PACKAGED_NOTEBOOKS):
        if folder is not None and _has_sources(folder):
            return folder
    raise FileNotFoundError(
        "no notebook sources (NN_name.py) found; looked in "
        f"{CHECKOUT_NOTEBOOKS} (a source checkout) and {PACKAGED_NOTEBOOKS} (an installed "
        "wheel). Run from a clone of the repository, or reinstall paperlib from it "
        "(pip install git+<repository URL>) so that the wheel carries the notebooks."
    )


try:
    NOTEBOOK_DIR = find_notebook_dir()
except FileNotFoundError:  # reported by the runner when it needs them; importing must work
    NOTEBOOK_DIR = CHECKOUT_NOTEBOOKS


class ParameterError(ValueError):
    """A notebook parameter is unknown, of the wrong type, or out of range."""


@dataclass(frozen=True)
class Param:
    """One notebook parameter: a check, a description, and per-profile defaults for ``None``."""

    check: Callable[[Any], str | None]  # returns an error fragment, or None when the value is fine
    accepted: str
    defaults: Mapping[str, Any] | None = None


def _choice(*choices: Any) -> Param:
    return Param(lambda v: None if v in choices else "", f"one of {list(choices)}")


def _seeds() -> Param:
    def check(v: Any) -> str | None:
        ok = v is None or (
            isinstance(v, list) and v and all(isinstance(s, int) and s >= 0 for s in v)
        )
        return None if ok else ""

    return Param(
        check,
        "a non-empty list of non-negative ints, or None for the profile's seeds",
        defaults={"smoke": [0], "quick": [0, 1, 2], "paper": [0, 1, 2, 3, 4]},
    )


def _final_seeds() -> Param:
    """Seeds of the reported runs: none of them is used by the weight selection (03: 0, 1, 2)."""
    return Param(
        _seeds().check,
        _seeds().accepted,
        defaults={"smoke": [0], "quick": [100, 101, 102], "paper": [100, 101, 102, 103, 104]},
    )


def _objectives() -> Param:
    def check(v: Any) -> str | None:
        known = registered("objective")
        ok = isinstance(v, list) and v and all(o in known for o in v) and len(set(v)) == len(v)
        return None if ok else ""

    return Param(
        check,
        "a non-empty list of distinct registered objective names "
        "(built in: elbo, mi, cmi, cmi_club)",
    )


def _weight(hi: float) -> Param:
    def check(v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return ""
        return None if 0.0 <= v <= hi else ""

    return Param(check, f"None (the preset's selected weight) or a number in [0, {hi}]")


def _weights_grid(hi: float) -> Param:
    def check(v: Any) -> str | None:
        ok = v is None or (
            isinstance(v, list)
            and v
            and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 <= w <= hi
                for w in v
            )
        )
        return None if ok else ""

    return Param(check, f"a non-empty list of numbers in [0, {hi}]")


def _optional(param: Param) -> Param:
    """`param`, or None for the profile's preset (its dataset, its data folder)."""
    return Param(
        lambda v: None if v is None else param.check(v), f"None (the preset's) or {param.accepted}"
    )


def _string() -> Param:
    return Param(lambda v: None if isinstance(v, str) else "", "a string (a folder path)")


def _opt_int(lo: int) -> Param:
    def check(v: Any) -> str | None:
        if v is None:
            return None
        return None if isinstance(v, int) and not isinstance(v, bool) and v >= lo else ""

    return Param(check, f"None (the profile's default) or an int >= {lo}")


def _number_list(ok: Callable[[Any], bool]) -> Callable[[Any], str | None]:
    """Check: None, or a non-empty list of numbers (no bools) each passing `ok`."""

    def check(v: Any) -> str | None:
        good = v is None or (
            isinstance(v, list)
            and v
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and ok(x) for x in v)
        )
        return None if good else ""

    return check


_COMMON: dict[str, Param] = {
    "profile": _choice(*PROFILES),
    "seeds": _seeds(),
    "out_dir": _string(),
}

SPECS: dict[str, dict[str, Param]] = {
    "00_walkthrough": {
        **_COMMON,
        "seeds": Param(
            _seeds().check, _seeds().accepted, defaults={"smoke": [0], "quick": [0], "paper": [0]}
        ),
        # the walkthrough's budget is 3 minutes: fewer steps than the speech preset's 500
        "steps": Param(
            _opt_int(1).check,
            _opt_int(1).accepted,
            defaults={"smoke": None, "quick": 300, "paper": 300},
        ),
        "beta": _weight(100.0),
    },
    "01_speech_dsae": {
        **_COMMON,
        "seeds": _final_seeds(),
        "results_dir": _string(),
        "objectives": _objectives(),
        "alpha": _weight(20.0),
        "beta": _weight(100.0),
        "dataset": _optional(_choice("synthetic_speech", "timit", "librispeech")),
        "data_dir": _optional(_string()),
        "steps": _opt_int(1),
    },
    "02_images_pixelcnn_vae": {
        **_COMMON,
        "seeds": _final_seeds(),
        "results_dir": _string(),
        "objectives": _objectives(),
        "alpha": _weight(20.0),
        "beta": _weight(100.0),
        "dataset": _optional(
            _choice(
                *[
                    d
                    for d in DATASETS
                    if d in ("mnist5k", "digits8x8", "mnist", "fashion_mnist", "cifar10")
                ]
            )
        ),
        "data_dir": _optional(_string()),
        "steps": _opt_int(1),
    },
    "03_information_plane": {
        **_COMMON,
        "seeds": Param(
            _seeds().check,
            _seeds().accepted,
            # at least two seeds for every weight setting (one seed's ranking is noise)
            defaults={"smoke": [0], "quick": [0, 1], "paper": [0, 1, 2]},
        ),
        "experiments": Param(
            lambda v: None if isinstance(v, list) and v and set(v) <= {"speech", "images"} else "",
            "a non-empty list from ['speech', 'images']",
        ),
        "alphas": Param(
            _weights_grid(20.0).check,
            _weights_grid(20.0).accepted + ", or None for the profile's grid",
            defaults={"smoke": [2.0], "quick": [1.0, 3.0], "paper": [0.5, 1.0, 2.0, 5.0]},
        ),
        "betas": Param(
            lambda v: None if v == "tied" else _weights_grid(100.0).check(v),
            _weights_grid(100.0).accepted
            + ", 'tied' (cmi at beta = alpha: ELBO + alpha I(x;z|s)), or None for the profile's",
            # tied in the quick profile: the paper's objective, and half the runs of a grid
            defaults={"smoke": "tied", "quick": "tied", "paper": [0.5, 1.0, 2.0, 4.0, 8.0]},
        ),
        # None: the experiments' own step count, so the selection holds at the reported budget
        "steps": _opt_int(1),
    },
    "05_mechanism": {
        **_COMMON,
        # paired differences need at least two seeds; the issue asks for five
        "seeds": Param(
            _seeds().check,
            _seeds().accepted,
            defaults={"smoke": [0, 1], "quick": [0, 1, 2, 3, 4], "paper": list(range(10))},
        ),
        # the first value of each dial is the centre of the one-at-a-time sweep
        "leaks": Param(
            _number_list(lambda x: 0.0 < x <= 1.0),
            "a non-empty list of numbers in (0, 1] (the first is the centre), or None",
            defaults={
                "smoke": [0.1, 0.9],
                # 0.3 as well would add 15 runs, past the notebook's time budget
                "quick": [0.1, 0.9],
                "paper": [0.05, 0.1, 0.3, 0.9],
            },
        ),
        "z_dims": Param(
            _number_list(lambda x: isinstance(x, int) and x >= 1),
            "a non-empty list of ints >= 1 (the first is the centre), or None",
            defaults={"smoke": [2], "quick": [2, 8], "paper": [1, 2, 4, 8]},
        ),
        "alphas": Param(
            _weights_grid(20.0).check,
            _weights_grid(20.0).accepted + ", or None for the profile's grid",
            defaults={"smoke": [2.0], "quick": [1.0, 2.0], "paper": [1.0, 2.0, 4.0]},
        ),
        "betas": Param(
            _weights_grid(100.0).check,
            _weights_grid(100.0).accepted + ", or None for the profile's grid",
            defaults={"smoke": [8.0], "quick": [2.0, 8.0], "paper": [2.0, 8.0, 32.0]},
        ),
        # weights are chosen on the validation split with their own seeds
        "selection_seeds": Param(
            _seeds().check,
            _seeds().accepted,
            defaults={"smoke": [0], "quick": [100, 101], "paper": [100, 101, 102]},
        ),
        "steps": _opt_int(1),
    },
    "04_summary": {
        "profile": _choice(*PROFILES),
        "results_dir": _string(),
        "out_dir": _string(),
    },
}


def notebook_names() -> list[str]:
    """The notebooks the suite runs (those with a source in notebooks/), in order."""
    return sorted(n for n in SPECS if (NOTEBOOK_DIR / f"{n}.py").exists())


def validate(notebook: str, params: Mapping[str, Any]) -> None:
    """Raise ParameterError naming the first unknown or invalid parameter in `params`."""
    if notebook not in SPECS:
        raise ParameterError(f"unknown notebook {notebook!r}; accepted: {notebook_names()}")
    spec = SPECS[notebook]
    for name, value in params.items():
        if name not in spec:
            close = [k for k in spec if _similar(k, name)]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(
                f"{notebook}: unknown parameter {name!r}{hint}; accepted parameters: {sorted(spec)}"
            )
        if spec[name].check(value) is not None:
            raise ParameterError(
                f"{notebook}: parameter {name!r} = {value!r} is not accepted; "
                f"expected {spec[name].accepted}"
            )


def check_params(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a notebook's parameters as they stand in its namespace and resolve ``None``.

    Called in the cell after the ``parameters`` cell with ``globals()``. Every user-level
    global (not a module, not private, not an IPython name) must be a declared parameter: a
    misspelled name injected by papermill is caught here.

    Returns
    -------
    dict of parameter -> value, with profile defaults filled in for ``None``.
    """
    ignore = {"In", "Out", "get_ipython", "exit", "quit", "open"}
    found = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in ignore
        and not isinstance(v, types.ModuleType)
        and not inspect.isfunction(v)
        and not inspect.isclass(v)
        and not inspect.isbuiltin(v)
    }
    validate(notebook, found)
    missing = sorted(set(SPECS[notebook]) - set(found))
    if missing:
        raise ParameterError(f"{notebook}: the parameters cell lacks {missing}")
    profile = found.get("profile", "quick")
    resolved = dict(found)
    for name, param in SPECS[notebook].items():
        if resolved.get(name) is None and param.defaults is not None:
            resolved[name] = param.defaults[profile]
    return resolved


def _similar(a: str, b: str) -> bool:
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.75


# ----------------------------------------------------------------------------------------------
# jupytext twins


def _content(nb: Any) -> list[tuple[str, str, tuple[str, ...], bool]]:
    """What a twin must agree on: each cell's type, source, tags, and whether it has outputs.

    Cell ids, execution counts and the cell and notebook metadata that JupyterLab and
    ``jupytext --sync`` write are left out: they differ between tools without changing the
    notebook.
    """
    return [
        (
            c.cell_type,
            c.source.strip("\n"),
            tuple(c.get("metadata", {}).get("tags", ())),
            bool(c.get("outputs")),
        )
        for c in nb.cells
    ]


def _twin(src: Path) -> Any:
    """The output-free notebook built from a percent-format source, with stable cell ids."""
    import jupytext

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    for i, cell in enumerate(nb.cells):  # stable ids, so an unchanged source gives equal bytes
        cell.id = f"cell-{i:03d}"
    return nb


def sync_ipynb(check: bool = False, folder: str | Path | None = None) -> list[Path]:
    """Rebuild each ``NN_name.ipynb`` (output-free) from its percent-format ``.py`` source.

    A twin counts as stale only when its cells differ from the source in type, source text or
    tags, or when it holds outputs (see `_content`); a twin that ``jupytext --sync`` or
    JupyterLab wrote with other cell ids or metadata is in sync and left as it is.

    Parameters
    ----------
    check : when True nothing is written; the stale twins are returned instead.
    folder : the notebooks' folder (default: `NOTEBOOK_DIR`).

    Returns
    -------
    The stale twins (written, unless ``check``).
    """
    import nbformat

    folder = Path(folder) if folder is not None else NOTEBOOK_DIR
    stale: list[Path] = []
    for src in sorted(folder.glob("[0-9][0-9]_*.py")):
        nb = _twin(src)
        twin = src.with_suffix(".ipynb")
        if twin.exists():
            try:
                current = _content(nbformat.reads(twin.read_text(), as_version=4))
            except (ValueError, KeyError):  # not a notebook any more: rebuild it
                current = None
            if current == _content(nb):
                continue
        stale.append(twin)
        if not check:
            twin.write_text(nbformat.writes(nb))
    return stale


def sync_command(sync: Callable[..., list[Path]], module: str, argv: list[str]) -> None:
    """``python -m <module> sync|check``: write what `sync` generates, or exit non-zero naming
    the out-of-date files (``sync(check=True)`` returns them without writing)."""
    import sys

    if argv == ["sync"]:
        for path in sync():
            print(f"wrote {path}")
    elif argv == ["check"]:
        stale = sync(check=True)
        if stale:
            sys.exit(f"out of date (run python -m {module} sync): {[str(p) for p in stale]}")
    else:
        sys.exit(f"usage: python -m {module} sync|check")


if __name__ == "__main__":
    import sys

    sync_command(sync_ipynb, "paperlib.notebooks", sys.argv[1:])
