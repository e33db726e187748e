"""The notebooks' parameter interface, fuzzed (issue 24): whatever ``run_all.sh`` is given, a run
either starts or stops with one clear line, never a traceback, and never touches results.

First every declared parameter alone (`paperlib.suite.params.validate`, many values each), then whole
command lines through the runner.

Hypothesis draws a command line: a profile, a choice of notebooks (``--only``) and ``-p``
overrides for the parameters that every notebook declares (`paperlib.suite.params.SPECS`), plain or
per notebook (``NN:name``), with values valid and invalid (duplicates, overlapping seeds, wrong
types, out of range, not JSON). ``runner.main`` runs in this process with the notebooks'
execution stubbed, so the test checks the parameter and refusal layer in well under a minute.

- a refusal (exit 2): one line on stderr, ``error: ...``; nothing executed; the results folder
  byte for byte as it was;
- a start (exit 0): only the notebooks it reports as ``run`` executed, and only their folders,
  ``_logs/`` and ``run_all.json`` changed.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paperlib.config import PROFILES
from paperlib.suite import runner
from paperlib.suite.params import SPECS, ParameterError, notebook_names, validate

ROOT = Path(__file__).resolve().parent.parent
NAMES = notebook_names()
PARAMS = sorted({k for n in NAMES for k in SPECS[n]})
#: the parameters a user sets (the runner sets the others: drawn too, but rarely)
USUAL = [k for k in PARAMS if k not in runner.SET_BY_RUNNER]

# ----------------------------------------------------------------------------------------------
# values: the specs' own defaults and nearby values, and values of every wrong kind

_defaults = [
    v
    for n in NAMES
    for p in SPECS[n].values()
    if p.defaults is not None
    for v in p.defaults.values()
    if v is not None
]
_words = ["speech", "images", "elbo", "mi", "cmi", "cmi_club", "vae", "tied", "mnist5k", "timit"]
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),  # small: seeds that repeat and overlap the selection's
    st.integers(-5, 2000),
    st.floats(-1.0, 120.0),
    st.sampled_from([float("nan"), float("inf"), 1e300]),
    st.sampled_from(_words),
    st.text(max_size=6),
)
VALUES = st.one_of(
    st.sampled_from(_defaults),
    st.lists(st.integers(0, 3), min_size=1, max_size=4),
    st.lists(st.sampled_from(_words), min_size=1, max_size=3),
    # lists that hold containers (unhashable: a check that builds a set must not raise)
    st.lists(
        st.lists(_scalar, max_size=2) | st.dictionaries(st.text(max_size=2), _scalar, max_size=1),
        min_size=1,
        max_size=2,
    ),
    # anything JSON holds, nested
    st.recursive(
        _scalar,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
        ),
        max_leaves=5,
    ),
)

_candidates = [
    *_defaults,
    *[None, 0, 1, 3, 7, 0.5, 2.0, 5.0, "tied", "speech", "mnist5k", "digits8x8", "data"],
    *[["speech"], ["images"], ["speech", "images"], ["elbo"], ["elbo", "mi", "cmi"]],
    *[["cmi_club"], [5], [7, 8], [100], [0.1], [1, 4], [2.0, 8.0]],
]
#: per parameter, the candidates that some notebook declaring it accepts: most runs then get
#: past the argument checks to the checks between notebooks and to the start
VALID = {
    key: [
        v
        for v in _candidates
        if any(SPECS[n][key].check(v) is None for n in NAMES if key in SPECS[n])
    ]  # fmt: skip
    for key in PARAMS
}


def _rarely(draw, rare, usual):
    """`rare` in about one draw of ten, else a draw from `usual` (hypothesis favours small
    integers, so the rare case is the largest)."""
    return rare if draw(st.integers(0, 9)) == 9 else draw(usual)


@st.composite
def command_lines(draw) -> list[str]:
    numbers = [n[:2] for n in NAMES]
    argv = ["--profile", _rarely(draw, "fast", st.sampled_from(PROFILES))]
    only = draw(st.lists(st.sampled_from(numbers), max_size=3, unique=True))
    only += _rarely(draw, ["99"], st.just([]))
    for name in only:
        argv += ["--only", name]
    for _ in range(draw(st.integers(0, 4))):
        odd = draw(st.sampled_from(["sedes", "alpah", *runner.SET_BY_RUNNER]))
        key = _rarely(draw, odd, st.sampled_from(USUAL))
        if draw(st.booleans()):  # per notebook: mostly one of the run's
            run = [n for n in only if n in numbers] or numbers
            key = f"{_rarely(draw, draw(st.sampled_from(numbers)), st.sampled_from(run))}:{key}"
        if draw(st.integers(0, 9)) == 9:  # not JSON (a string), or a word that looks like an option
            text = draw(
                st.one_of(
                    st.text(alphabet="abc[]{} ,.01:", min_size=1, max_size=6),
                    st.sampled_from(["-1e-3", "-x", "--", "-p", "--force", "--only"]),
                )
            )
        else:
            name = key.split(":")[-1]
            valid = st.sampled_from(VALID[name]) if VALID.get(name) else VALUES
            text = json.dumps(draw(st.one_of(valid, valid, VALUES)))
        argv += ["-p", key, text]
    if draw(st.booleans()):
        argv.append("--force")
    return argv


# ----------------------------------------------------------------------------------------------
# one parameter at a time: every declared parameter, many values each


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_every_declared_parameter_accepts_or_refuses_any_value_in_one_line(data):
    name = data.draw(st.sampled_from(NAMES))
    key = data.draw(st.sampled_from(sorted(SPECS[name])))
    value = data.draw(VALUES)
    try:
        validate(name, {key: value})
    except ParameterError as err:
        message = str(err)
        assert len(message.splitlines()) == 1 and f"{name}: parameter {key!r} = " in message
        assert "expected " in message, message


# ----------------------------------------------------------------------------------------------
# whole command lines, through the runner


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def _seed_results(dest: Path) -> None:
    """The committed results' small files (run records, metrics, notebook 03's selection)."""
    for f in (ROOT / "results").glob("[0-9][0-9]_*/*.json"):
        (dest / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest / f.parent.name / f.name)


def _git_status_of_results() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--ignored=no", "results/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout


def test_every_command_line_starts_or_stops_in_one_line(tmp_path_factory):
    committed = _git_status_of_results(), _snapshot(ROOT / "results")
    results = tmp_path_factory.mktemp("fuzz") / "results"
    _seed_results(results)
    executed: list[str] = []
    outcomes: dict[int, int] = {}

    def stub(input_path, output_path, params, log_path, name):
        executed.append(name)
        Path(output_path).write_text("{}")

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,  # the same examples on every machine: a failure reproduces
        database=None,
    )
    @given(argv=command_lines())
    def one(argv):
        before = _snapshot(results)
        executed.clear()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = runner.main([*argv, "--results", str(results)])  # a traceback fails the test
        out, err = out.getvalue(), err.getvalue()
        shown = f"argv {argv}\nstdout:\n{out}\nstderr:\n{err}"
        outcomes[rc] = outcomes.get(rc, 0) + 1
        assert "Traceback" not in out + err, shown
        if rc == 2:
            assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, shown
            assert not executed and _snapshot(results) == before, shown
            return
        assert rc == 0 and err == "", shown
        started = [ln.split()[1] for ln in out.splitlines() if ln.startswith("run   ")]
        assert sorted(executed) == sorted(started), shown
        changed = {k for k in {*before, *_snapshot(results)} if before.get(k) != _read(results, k)}
        top = {k.split("/", 1)[0] for k in changed}
        assert top <= {*started, "_logs", "run_all.json"}, f"{shown}\nchanged: {sorted(changed)}"

    with pytest.MonkeyPatch.context() as mp:
        # the environment that the runner sets for its kernels is put back afterwards
        for var in ("PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            mp.setenv(var, os.environ.get(var, "1"))
        for var in ("PAPERLIB_PROGRESS", "PAPERLIB_WORKDIR"):
            mp.delenv(var, raising=False)
        mp.setattr(runner, "execute", stub)
        one()
    assert (_git_status_of_results(), _snapshot(ROOT / "results")) == committed
    # the draws reach both sides of the refusal layer, not only the argument checks
    assert outcomes.get(0, 0) >= 10 and outcomes.get(2, 0) >= 10, outcomes


def _read(folder: Path, rel: str) -> bytes | None:
    path = folder / rel
    return path.read_bytes() if path.is_file() else None
