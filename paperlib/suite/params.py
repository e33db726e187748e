"""Notebook parameters: one declared spec per notebook, validated before and inside each run.

papermill only *warns* about a parameter the notebook does not declare, and a misspelled name
silently becomes a new variable. So every notebook calls ``paperlib.suite.plan.setup`` (which calls
`check_params`) in the cell after its ``parameters`` cell, and `paperlib.suite.runner` checks ``-p``
overrides against the same spec before starting a kernel. Both fail with a message naming the
parameter and the accepted values.

``None`` for a parameter means "the profile's default", resolved by `check_params`; the
defaults, each with its reason, live in ``paperlib.presets`` beside the configs they go with.

This module imports no torch: `paperlib.suite.runner` reads the specs before any kernel starts. The
notebooks' first call, `paperlib.suite.plan.setup`, builds on it; `paperlib.suite.plan` imports this module,
never the other way round.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paperlib import presets
from paperlib.config import PROFILES
from paperlib.studies.components import BUILTIN_DATASETS as DATASETS
from paperlib.studies.components import registered
from paperlib.suite.notebooks import NOTEBOOK_DIR


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


def _repeated(values: list[Any]) -> str | None:
    """Why a list that must hold distinct values does not, or None when its values are distinct.

    Compared with ``==`` (1 and 1.0 are the same weight), so unhashable values are fine too.
    """
    for i, v in enumerate(values):
        if v in values[:i]:
            return f"{v!r} appears more than once: that run would be trained and counted twice"
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _seeds(defaults: Mapping[str, list[int]]) -> Param:
    """Seeds: a non-empty list of distinct non-negative ints, or None for `defaults[profile]`."""

    def check(v: Any) -> str | None:
        if v is None:
            return None
        if not (isinstance(v, list) and v and all(_is_int(s) and s >= 0 for s in v)):
            return ""
        # a repeated seed trains the same run twice and counts it twice in every mean and spread
        return _repeated(v)

    return Param(
        check,
        "a non-empty list of distinct non-negative ints, or None for the profile's seeds",
        defaults=defaults,
    )


def _objectives() -> Param:
    def check(v: Any) -> str | None:
        known = registered("objective")
        ok = isinstance(v, list) and v and all(isinstance(o, str) and o in known for o in v)
        return _repeated(v) if ok else ""

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


def _number_list(ok: Callable[[Any], bool]) -> Callable[[Any], str | None]:
    """Check: None, or a non-empty list of distinct numbers (no bools) each passing `ok`."""

    def check(v: Any) -> str | None:
        if v is None:
            return None
        good = (
            isinstance(v, list)
            and v
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and ok(x) for x in v)
        )
        # a repeated grid point trains the same runs twice and weighs them twice
        return _repeated(v) if good else ""

    return check


def _weights_grid(hi: float) -> Param:
    return Param(
        _number_list(lambda w: 0.0 <= w <= hi), f"a non-empty list of distinct numbers in [0, {hi}]"
    )


def _widen_rounds(defaults: Mapping[str, int]) -> Param:
    """Notebooks 03 and 05: how many times a weight chosen on its grid's edge is widened."""
    return Param(
        lambda v: None if v is None or (_is_int(v) and 0 <= v <= 5) else "",
        "None (the profile's) or an int from 0 to 5: how many times a weight chosen on its "
        "grid's edge adds the next value outward and trains it",
        defaults=defaults,
    )


def _optional(param: Param) -> Param:
    """`param`, or None for the profile's preset (its dataset, its data folder)."""
    return Param(
        lambda v: None if v is None else param.check(v), f"None (the preset's) or {param.accepted}"
    )


def _string() -> Param:
    return Param(lambda v: None if isinstance(v, str) else "", "a string (a folder path)")


def _overrides() -> Param:
    """Config values that replace the preset's, ``{"block__key": value}``; the keys themselves are
    checked where the Config is built (`paperlib.suite.plan.base_config`)."""

    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return ""
        for key, value in v.items():
            if not (isinstance(key, str) and key.count("__") == 1):
                return f" (key {key!r} is not of the form 'block__key')"
            if not (value is None or isinstance(value, str | int | float | bool)):
                return f" (the value of {key!r} is a {type(value).__name__}, not a scalar)"
        return None

    return Param(
        check,
        "a dict of config values that replace the preset's, {'block__key': value} (for "
        "instance {'model__decoder_variance': 'ml'}); {} for none",
    )


def _opt_int(lo: int) -> Param:
    def check(v: Any) -> str | None:
        if v is None:
            return None
        return None if isinstance(v, int) and not isinstance(v, bool) and v >= lo else ""

    return Param(check, f"None (the profile's default) or an int >= {lo}")


def _common(seeds: Mapping[str, list[int]]) -> dict[str, Param]:
    """The parameters every training notebook has; `seeds`: profile -> its default seeds."""
    return {"profile": _choice(*PROFILES), "seeds": _seeds(seeds), "out_dir": _string()}


#: notebook 05's dials, seeds and weight grids per profile
_MECHANISM = presets.mechanism.NOTEBOOK

#: notebook -> its parameters. A default (for ``None``) per profile comes from
#: ``paperlib.presets``, where each value has its reason.
SPECS: dict[str, dict[str, Param]] = {
    "00_walkthrough": {
        **_common(presets.speech.WALKTHROUGH_SEEDS),
        "steps": Param(
            _opt_int(1).check, _opt_int(1).accepted, defaults=presets.speech.WALKTHROUGH_STEPS
        ),
        "beta": _weight(100.0),
    },
    "01_speech_dsae": {
        **_common(presets.sweep.SPEECH_REPORTED_SEEDS),
        "results_dir": _string(),
        "objectives": _objectives(),
        "alpha": _weight(20.0),
        "beta": _weight(100.0),
        "dataset": _optional(_choice("synthetic_speech", "timit", "librispeech")),
        "data_dir": _optional(_string()),
        "steps": _opt_int(1),
        "overrides": _overrides(),
    },
    "02_images_pixelcnn_vae": {
        **_common(presets.sweep.REPORTED_SEEDS),
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
        "overrides": _overrides(),
    },
    "03_information_plane": {
        **_common(presets.sweep.SELECTION_SEEDS),
        "experiments": Param(
            lambda v: (
                _repeated(v)
                if isinstance(v, list) and v and all(e in ("speech", "images") for e in v)
                else ""
            ),
            "a non-empty list of distinct names from ['speech', 'images']",
        ),
        "alphas": Param(
            _weights_grid(20.0).check,
            _weights_grid(20.0).accepted + ", or None for the profile's grid",
            defaults=presets.sweep.ALPHAS,
        ),
        "betas": Param(
            lambda v: None if v == "tied" else _weights_grid(100.0).check(v),
            _weights_grid(100.0).accepted
            + ", 'tied' (cmi at beta = alpha: ELBO + alpha I(x;z|s)), or None for the profile's",
            defaults=presets.sweep.BETAS,
        ),
        "widen_rounds": _widen_rounds(presets.sweep.WIDEN_ROUNDS),
        # None: the experiments' own step count, so the selection holds at the reported budget
        "steps": _opt_int(1),
        "overrides": _overrides(),
    },
    "05_mechanism": {
        **_common(_MECHANISM["seeds"]),
        "leaks": Param(
            _number_list(lambda x: 0.0 < x <= 1.0),
            "a non-empty list of distinct numbers in (0, 1] (the first is the centre), or None",
            defaults=_MECHANISM["leaks"],
        ),
        "z_dims": Param(
            _number_list(lambda x: isinstance(x, int) and x >= 1),
            "a non-empty list of distinct ints >= 1 (the first is the centre), or None",
            defaults=_MECHANISM["z_dims"],
        ),
        "alphas": Param(
            _weights_grid(20.0).check,
            _weights_grid(20.0).accepted + ", or None for the profile's grid",
            defaults=_MECHANISM["alphas"],
        ),
        "betas": Param(
            _weights_grid(100.0).check,
            _weights_grid(100.0).accepted + ", or None for the profile's grid",
            defaults=_MECHANISM["betas"],
        ),
        "selection_seeds": _seeds(_MECHANISM["selection_seeds"]),
        "widen_rounds": _widen_rounds(_MECHANISM["widen_rounds"]),
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
            close = [k for k in spec if similar(k, name)]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(
                f"{notebook}: unknown parameter {name!r}{hint}; accepted parameters: {sorted(spec)}"
            )
        why = spec[name].check(value)
        if why is not None:
            raise ParameterError(
                f"{notebook}: parameter {name!r} = {value!r} is not accepted"
                + (f" ({why})" if why else "")
                + f"; expected {spec[name].accepted}"
            )


#: (reported seeds, selection seeds) of a notebook that selects its own weights: the runs that
#: chose the weights must not be the runs that report them
_UNSEEN_SEEDS = {"05_mechanism": ("seeds", "selection_seeds")}


def check_unseen_seeds(
    notebook: str, reported: list[int], selecting: list[int], where: str, instead: str
) -> None:
    """Raise ParameterError when the reported `seeds` overlap the seeds that chose the weights.

    Test metrics of a run whose validation scores picked the weights are not held out: the
    selection would be reported on its own seeds. `where` names the selection, `instead` says
    what would be accepted.
    """
    both = [s for s in reported if s in selecting]
    if both:
        raise ParameterError(
            f"{notebook}: parameter 'seeds' = {reported} overlaps the seeds {selecting} on which "
            f"{where} chooses the weights (seed{'s' if len(both) > 1 else ''} "
            f"{', '.join(map(str, both))} in both), so the reported runs would not be held out; "
            f"accepted: {instead}"
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
    if notebook in _UNSEEN_SEEDS:
        report, select = _UNSEEN_SEEDS[notebook]
        default = SPECS[notebook][report].defaults[profile]
        check_unseen_seeds(
            notebook,
            resolved[report],
            resolved[select],
            f"its parameter {select!r}",
            f"seeds disjoint from {select} (the profile's: {report} {default}, "
            f"{select} {SPECS[notebook][select].defaults[profile]})",
        )
    return resolved


def similar(a: str, b: str) -> bool:
    """Whether `b` reads like a misspelling of `a` (for "did you mean" in refusals)."""
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.75
