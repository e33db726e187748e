"""Execute the suite's notebooks with papermill: ``python -m paperlib.suite.runner`` (run_all.sh).

- Each ``notebooks/NN_name.py`` (jupytext percent source) runs with the profile's parameters.
- A notebook executes into a staging folder; only when it succeeds does its folder replace
  ``results/NN_name/``. A failure names the notebook and the failing cell's error, exits non-zero,
  and leaves every earlier result untouched.
- Before anything runs, every ``-p`` override is checked against the notebooks' declared
  parameters, and the run as a whole against notebook 03's selection (`plan.check_run`): a
  refusal is one line that names the parameter, its value and what would be accepted.
- Up to date means the same request: a notebook is skipped (unless ``--force``) when this
  checkout already ran it with the same resolved parameters (after the parameters cell, the
  profile's defaults and ``-p``), the same configuration (the presets), the same code (its
  source and paperlib) and the same inputs from the results folder (notebook 03's selection for
  01/02, the other notebooks' results for the summary). The record of that request, `request`,
  is kept in ``results/NN_name/run.json`` and in the git-ignored ``results/_logs/``, so a fresh
  clone regenerates every result even when results are committed. ``run`` says what differs,
  ``skip`` what matched.
- Each profile writes its own results folder (`results_folder`): ``quick``, the profile whose
  results are committed, ``results/``; every other profile ``results/<profile>/``
  (``results/smoke/`` is git-ignored), so no profile overwrites another's results.
- ``--jobs N`` runs independent notebooks in parallel; the summary runs last.
- One log file per notebook in ``results/_logs/``. Training progress (`paperlib.progress`,
  plain text under the runner) goes into that log and is echoed to the terminal, each line
  prefixed with the notebook's name; the total wall time is printed.
- From a source checkout the notebooks are ``notebooks/`` and ``results/`` sits beside them.
  After a non-editable install (``pip install``, Colab) the notebooks come from the wheel and
  ``results/``, ``runs/`` and the data cache go to the working folder (``$PAPERLIB_WORKDIR``,
  else the current directory; `paperlib.runtime.work_dir`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from paperlib import progress
from paperlib.config import PROFILES
from paperlib.records import write_json
from paperlib.runtime import WORKDIR_ENV, in_work_dir, kernel_threads, work_dir
from paperlib.suite.notebooks import NOTEBOOK_DIR, find_notebook_dir
from paperlib.suite.params import SPECS, ParameterError, notebook_names, similar, validate

PACKAGE = Path(__file__).resolve().parents[1]
SUMMARY = "04_summary"
#: notebooks that read notebook 03's weight selection, so run after it
SELECTION = "03_information_plane"
NEEDS_SELECTION = ("01_speech_dsae", "02_images_pixelcnn_vae")
#: the profile whose results are committed: it writes results/ itself, every other profile its
#: own subfolder (results/smoke/ is git-ignored)
COMMITTED_PROFILE = "quick"
#: parameters that the runner sets itself, and the option that sets them
SET_BY_RUNNER = {"profile": "--profile", "out_dir": "--results", "results_dir": "--results"}


class NotebookFailed(RuntimeError):
    """A notebook raised in one of its cells."""


def results_folder(profile: str, given: str | Path | None = None) -> Path:
    """Where a run of `profile` writes: `given` (``--results``), else ``results/`` for the
    committed profile and ``results/<profile>/`` for the others (in the checkout, or in the
    working folder after a wheel install)."""
    if given is not None:
        return Path(given)
    base = in_work_dir("results")
    return base if profile == COMMITTED_PROFILE else base / profile


def code_hash(name: str) -> str:
    """sha256 of the code a notebook runs: its source and every module of paperlib."""
    h = hashlib.sha256()
    source = NOTEBOOK_DIR / f"{name}.py"
    h.update(f"notebooks/{source.name}".encode())
    h.update(source.read_bytes())
    library = [p for p in sorted(PACKAGE.rglob("*.py")) if "_notebooks" not in p.parts]
    for f in library:
        if f.exists():
            h.update(f.relative_to(PACKAGE.parent).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def data_inputs(name: str, params: dict[str, Any], results: Path) -> dict[str, str]:
    """sha256 of each file that `name` reads from the results folder, by its relative path.

    01/02 read notebook 03's selection (unless both weights are given); the summary reads the
    other notebooks' metrics.json, run.json and figures.json, and run_all.json. The datasets
    themselves are embedded or generated from the code and the configuration, which the request
    holds already.
    """
    files: list[Path] = []
    if name in NEEDS_SELECTION and (params.get("alpha") is None or params.get("beta") is None):
        files.append(results / SELECTION / "selected_weights.json")
    if name == SUMMARY:
        files.append(results / "run_all.json")
        for nb in notebook_names():
            if nb != SUMMARY:
                files += [results / nb / f for f in ("metrics.json", "run.json", "figures.json")]
    return {f.relative_to(results).as_posix(): _file_hash(f) for f in files}


def resolve(name: str, profile: str, extra: dict[str, Any], results: Path) -> dict[str, Any]:
    """The parameters `name` runs with: its parameters cell, `profile`, the ``-p`` overrides
    `extra` and the runner's folders, with ``None`` resolved to the profile's defaults.

    Raises ParameterError naming an invalid parameter (also one that the configuration refuses).
    """
    from paperlib.suite import plan

    given = {**extra, "profile": profile}
    if "results_dir" in SPECS[name]:
        given["results_dir"] = str(results.resolve())
    try:
        return plan.notebook_params(name, profile, given)
    except ParameterError:  # already names the parameter (a ValueError too)
        raise
    except ValueError as err:  # a Config that refuses a value (paperlib.config checks ranges)
        raise ParameterError(f"{name}: {err}") from None


def request(name: str, params: dict[str, Any], results: Path) -> dict[str, Any]:
    """What a notebook's result depends on, as recorded beside it and compared before a rerun.

    ``params``: the resolved parameters (where the result is written excluded); ``config``: the
    Config(s) the notebook trains from (the presets with the parameters applied); ``code``:
    `code_hash`; ``data``: `data_inputs`. JSON-normalised, so that a recorded request read back
    compares equal.
    """
    from paperlib.suite.plan import notebook_config

    try:
        cfg = notebook_config(name, params)
    except ValueError as err:
        raise ParameterError(f"{name}: {err}") from None
    if isinstance(cfg, dict):
        config = {k: c.to_dict() for k, c in cfg.items()}
    else:
        config = cfg.to_dict() if cfg is not None else None
    req = {
        "params": {k: v for k, v in params.items() if k not in ("out_dir", "results_dir")},
        "config": config,
        "code": code_hash(name),
        "data": data_inputs(name, params, results),
    }
    return json.loads(json.dumps(req, default=str))


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _changes(old: Any, new: Any, what: str, limit: int = 2) -> str | None:
    """What differs between two records, ``parameters changed: seeds [100] -> [5]``, or None
    when they are equal (nested keys dotted: ``train.steps``; at most `limit` named)."""
    if old == new:
        return None
    a, b = _flat(old if old is not None else {}), _flat(new if new is not None else {})
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k, "(none)") != b.get(k, "(none)")]
    shown = [f"{k} {a.get(k, '(none)')!r} -> {b.get(k, '(none)')!r}" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{what} changed: " + ", ".join(shown) + more


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def stale_reason(name: str, req: dict[str, Any], results: Path) -> str | None:
    """Why `name` must run for request `req`, or None when its last result answers it.

    The result answers it when ``results/<name>/run.json`` and this checkout's record in
    ``results/_logs/`` both hold exactly `req`.
    """
    run = _read_json(results / name / "run.json")
    if not isinstance(run, dict):
        return "no result yet"
    recorded = _read_json(_stamp(results, name))
    if not isinstance(recorded, dict):
        return "no record of its request in _logs/ (a fresh clone, or an older runner)"
    if recorded != run.get("request"):
        return "its result is not the one this checkout's last run made"
    code = "code changed (the notebook's source or paperlib)"
    return (  # the first difference, in the order a user can act on
        _changes(recorded.get("params"), req["params"], "parameters")
        or _changes(recorded.get("config"), req["config"], "configuration")
        or (code if recorded.get("code") != req["code"] else None)
        or _changes(recorded.get("data"), req["data"], "inputs")
    )


def _matched(req: dict[str, Any], extra: dict[str, Any]) -> str:
    """What `skip` reports as matched: profile, the parameters given, code and inputs."""
    given = ", ".join(f"{k}={v!r}" for k, v in extra.items()) or "the defaults"
    inputs = f" and inputs {sorted(req['data'])}" if req["data"] else ""
    return (
        f"the same profile {req['params']['profile']}, parameters ({given}), configuration, "
        f"code {req['code'][:12]}{inputs}"
    )


def kernel_cwd() -> Path:
    """Where the notebooks execute: ``notebooks/`` of a checkout, else ``<work_dir>/notebooks``.

    The notebooks' relative defaults (``../data``, ``../results/...``) then point into the
    checkout, or into the working folder, never into site-packages.
    """
    if NOTEBOOK_DIR.parent == PACKAGE.parent:
        return NOTEBOOK_DIR
    cwd = work_dir() / "notebooks"
    cwd.mkdir(parents=True, exist_ok=True)
    return cwd


def headless_environment() -> None:
    """Set what the kernels inherit when run headless; a user's own settings are kept.

    ``PAPERLIB_PROGRESS=text``: training prints plain-text progress lines (a tqdm widget would
    leave the log empty). ``PAPERLIB_WORKDIR``: this run's working folder, so that a wheel
    install keeps ``runs/`` and the data cache there and not in the kernel's cwd.
    """
    os.environ.setdefault(progress.PROGRESS_ENV, "text")
    os.environ.setdefault(WORKDIR_ENV, str(work_dir()))


class _ProgressTee:
    """The notebook's stdout log: every write goes to the log file; complete lines printed by
    `paperlib.progress` are echoed to the terminal, prefixed with the notebook's name."""

    def __init__(self, log, name: str, echo=None):
        self.log, self.name, self.echo = log, name, echo
        self._partial = ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self.log.flush()  # the log fills while the notebook runs: `tail -f` shows progress
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line.startswith(progress.PREFIX):
                out = self.echo if self.echo is not None else sys.stdout
                print(f"{self.name}  {line[len(progress.PREFIX) :].strip()}", file=out, flush=True)
        return len(text)

    def flush(self) -> None:
        self.log.flush()


def _stamp(results: Path, name: str) -> Path:
    # in the git-ignored _logs/ folder: a fresh clone with committed results still reruns
    return results / "_logs" / f"{name}.inputs"


def resolve_names(only: list[str] | None) -> list[str]:
    """The notebooks that ``--only`` selects (a full name, its number or its end; all when
    `only` is empty), sorted; ParameterError for one that names no single notebook."""
    names = notebook_names()
    if not only:
        return names
    chosen = []
    for want in only:
        match = [n for n in names if n == want or n.split("_", 1)[0] == want or n.endswith(want)]
        if len(match) != 1:
            raise ParameterError(
                f"--only {want!r} does not name one notebook; accepted: {names} "
                "(or their number, e.g. 01)"
            )
        chosen.append(match[0])
    return sorted(set(chosen))


def overrides(pairs: list[tuple[str, str]] | list[list[str]], names: list[str]) -> dict:
    """``-p NAME VALUE`` pairs -> {notebook: {parameter: value}} for the selected `names`.

    VALUE is JSON where it parses, else a string. NAME ``NN:param`` (``03:experiments``) applies
    to notebook NN only, which must be among `names`; a plain NAME to every notebook of `names`
    that declares it, and at least one must. ``profile``, ``out_dir`` and ``results_dir`` are
    the runner's (``--profile``, ``--results``).

    Raises
    ------
    ParameterError
        Naming the option and what would be accepted.
    """
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, text in pairs:
        if ":" in key:
            prefix, key = key.split(":", 1)
            (target,) = resolve_names([prefix])
            if target not in names:
                shown = [n.split("_", 1)[0] for n in names]
                raise ParameterError(
                    f"-p {prefix}:{key} {text}: notebook {target} is not among the selected "
                    f"{names}; accepted prefixes here: {shown} (add --only "
                    f"{target.split('_', 1)[0]} to run {target} too)"
                )
            targets = [target]
        else:
            targets = [n for n in names if key in SPECS[n]]
            if not targets:
                known = sorted({k for n in names for k in SPECS[n]} - set(SET_BY_RUNNER))
                close = [k for k in known if similar(k, key)]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                elsewhere = [n for n in notebook_names() if key in SPECS[n]]
                there = f"; {elsewhere} declare it" if elsewhere else ""
                raise ParameterError(
                    f"-p {key} {text}: unknown parameter {key!r}{hint} for the notebooks of "
                    f"this run {names}; accepted parameters: {known}{there}"
                )
        if key in SET_BY_RUNNER:
            raise ParameterError(
                f"-p {key} {text}: {key!r} is set by the runner; use {SET_BY_RUNNER[key]} instead"
            )
        for n in targets:
            out[n][key] = parse_value(text)
    return out


def execute(
    input_path: Path, output_path: Path, params: dict[str, Any], log_path: Path, name: str
) -> None:
    """Run one notebook with papermill in `kernel_cwd`, its stdout and stderr into `log_path`.

    Progress lines are echoed to the terminal as they arrive (`_ProgressTee`).

    Raises
    ------
    NotebookFailed
        Naming the notebook, the failing cell's execution count, its error and the log.
    """
    import papermill as pm

    with open(log_path, "w") as log_file:
        log = _ProgressTee(log_file, name)
        try:
            pm.execute_notebook(
                str(input_path),
                str(output_path),
                parameters=params,
                cwd=str(kernel_cwd()),
                kernel_name="python3",
                progress_bar=False,
                log_output=True,
                stdout_file=log,
                stderr_file=log,
            )
        except pm.PapermillExecutionError as err:
            raise NotebookFailed(
                f"notebook {name} failed in cell [{err.exec_count}]: {err.ename}: {err.evalue}\n"
                f"  log: {log_path}"
            ) from None


def run_notebook(
    name: str,
    profile: str,
    results: Path,
    extra: dict[str, Any] | None = None,
    req: dict[str, Any] | None = None,
) -> float:
    """Execute one notebook into a staging folder, then move it into ``results/<name>``.

    `req` is the notebook's `request` (computed here when None); it is recorded in run.json and
    in ``results/_logs/`` once the notebook has succeeded. Returns the wall time in seconds.
    Raises NotebookFailed naming the cell and its error.
    """
    import jupytext
    import nbformat

    if req is None:
        req = request(name, resolve(name, profile, extra or {}, results), results)
    params: dict[str, Any] = {"profile": profile, **(extra or {})}
    staging = results / ".staging" / name
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    params["out_dir"] = str(staging.resolve())
    if "results_dir" in SPECS[name]:
        params["results_dir"] = str(results.resolve())
    validate(name, params)

    logs = results / "_logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    source = NOTEBOOK_DIR / f"{name}.py"
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    input_path = staging / f"{name}.input.ipynb"
    nbformat.write(nb, input_path)
    output_path = staging / f"{name}.ipynb"

    start = time.perf_counter()
    try:
        execute(input_path, output_path, params, log_path, name)
    except NotebookFailed as err:
        raise NotebookFailed(f"{err}\n  executed notebook: {output_path}") from None
    seconds = time.perf_counter() - start
    input_path.unlink()
    (staging / "run.json").write_text(
        json.dumps(
            {
                "profile": profile,
                "params": {**params, "out_dir": str(results / name)},
                "wall_seconds": round(seconds, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                # what this result answers: the runner compares it before a rerun
                "request": req,
            },
            indent=2,
        )
        + "\n"
    )
    _swap_into_place(staging, results / name)
    write_json(_stamp(results, name), req)
    return seconds


def _swap_into_place(staging: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)


def _command(args: argparse.Namespace) -> str:
    """The run_all.sh command that works on this run's profile and results folder."""
    words = ["./run_all.sh"]
    if args.profile != COMMITTED_PROFILE:
        words += ["--profile", args.profile]
    if args.results:
        words += ["--results", args.results]
    return shlex.join(words)


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line, like the runner's own refusals."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (./run_all.sh --help lists the options)\n")


#: the runner's options, which a ``-p`` NAME or VALUE cannot be
_OPTIONS = ("-p", "-h", "--help", "--profile", "--only", "--jobs", "--force", "--results")


def _take_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Every ``-p NAME VALUE`` taken out of `argv` before argparse sees it: a VALUE that starts
    with '-' (``-p alpha -1e-3``, ``-p data_dir -x``) is a value, not an option."""
    rest, pairs, i = [], [], 0
    while i < len(argv):
        if argv[i] == "-p":
            words = argv[i + 1 : i + 3]
            if len(words) < 2 or any(w in _OPTIONS or w.startswith("--") for w in words):
                raise ParameterError(
                    f"-p {' '.join(words)}: -p takes a NAME and a VALUE "
                    "(-p seeds '[0, 1]', -p 03:steps 1500)"
                )
            pairs.append((argv[i + 1], argv[i + 2]))
            i += 3
        else:
            rest.append(argv[i])
            i += 1
    return rest, pairs


def _parser() -> argparse.ArgumentParser:
    """The runner's command line (``-p`` is taken out before parsing, see `_take_overrides`)."""
    parser = _OneLineParser(prog="run_all.sh", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile", default="quick", help=f"one of {list(PROFILES)} (default quick)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this notebook (repeatable); name or number, e.g. 01",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="notebooks run in parallel (default: 2, or 1 on a single core)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rerun notebooks whose results are up to date"
    )
    parser.add_argument(
        "--results",
        default=None,
        help=f"results folder (default: results/ for the {COMMITTED_PROFILE} profile, "
        "results/<profile>/ for the others, in the checkout or else in the working folder)",
    )
    parser.add_argument(
        "-p",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="override a parameter of every selected notebook that has it (JSON value); "
        "NN:NAME (e.g. 03:experiments) overrides it in notebook NN only",
    )
    return parser


class _Run:
    """One call of the runner: the notebooks it resolved and checked before anything ran, then
    which of them are due, ran and failed.

    Built by `_Run.checked`, which raises ParameterError (or FileNotFoundError) for every
    refusal before anything is written: a refused run leaves results as they were.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        argv: list[str],
        extra: dict[str, dict[str, Any]],
        results: Path,
        resolved: dict[str, dict[str, Any]],
    ) -> None:
        self.args, self.argv, self.extra, self.results = args, argv, extra, results
        self.names, self.resolved = list(resolved), resolved
        self.requests = {n: request(n, resolved[n], results) for n in self.names}
        self.failed: list[str] = []
        self.ran: list[str] = []
        self.t0 = time.perf_counter()

    @classmethod
    def checked(cls, args: argparse.Namespace, argv: list[str]) -> _Run:
        """The run of `args`: its notebooks' parameters resolved and checked, and notebook 03's
        selection checked against 01/02 (``plan.check_run``)."""
        if args.profile not in PROFILES:
            raise ParameterError(
                f"--profile {args.profile!r} is not accepted; choose one of {list(PROFILES)}"
            )
        if args.jobs < 1:
            raise ParameterError(f"--jobs must be >= 1, got {args.jobs}")
        find_notebook_dir()  # a wheel without its notebooks: say where we looked
        names = resolve_names(args.only)
        extra = overrides(args.p, names)
        for name in names:
            validate(name, extra[name])
        results = results_folder(args.profile, args.results)
        resolved = {n: resolve(n, args.profile, extra[n], results) for n in names}
        from paperlib.suite import plan

        plan.check_run(args.profile, resolved, results, _command(args))
        return cls(args, argv, extra, results, resolved)

    def prepare_environment(self) -> None:
        """Kernels' PATH and thread counts, a headless display, the results folder."""
        # Kernels start `python` from PATH: make it this interpreter's environment.
        path = os.environ.get("PATH", "")
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + path
        # Parallel notebooks share the cores: more threads than cores makes torch's small
        # kernels spin and slows everything down many times over. A user's own setting is kept.
        # Cores that another program keeps busy count as taken (runtime.kernel_threads).
        parallel = min(self.args.jobs, max(len(self.names), 1))
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads is None:
            n, note = kernel_threads(parallel)
            threads = str(n)
            if note:
                print(note, flush=True)
        # torch lets MKL_NUM_THREADS override OMP_NUM_THREADS: both take the user's OMP setting.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, threads)
        headless_environment()
        self.results.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()

    def due(self, name: str) -> str | None:
        """Why `name` runs now (its request recomputed: an input may have changed), or None
        after printing what matched."""
        self.requests[name] = request(name, self.resolved[name], self.results)
        why = (
            "--force" if self.args.force else stale_reason(name, self.requests[name], self.results)
        )
        if why is None:
            print(
                f"skip  {name} (up to date: {_matched(self.requests[name], self.extra[name])} as "
                f"its last run, in {self.results / name}; --force reruns it)",
                flush=True,
            )
        return why

    def one(self, name: str, why: str) -> None:
        """Run notebook `name` (unless another has failed), recording that it ran or failed."""
        if self.failed:  # another notebook failed: start nothing new
            return
        print(f"run   {name} (profile {self.args.profile}; {why}) ...", flush=True)
        try:
            seconds = run_notebook(
                name, self.args.profile, self.results, self.extra[name], self.requests[name]
            )
        except BaseException:
            self.failed.append(name)
            raise
        self.ran.append(name)
        print(f"done  {name} in {seconds:.0f} s -> {self.results / name}", flush=True)

    def run_notebooks(self) -> None:
        """Every due notebook but the summary, `--jobs` at a time; 03 first, and 01/02, which
        read the weights that 03 selects, decided once it has finished."""
        first = [n for n in self.names if n != SUMMARY]
        todo: dict[str, str] = {}
        if SELECTION in first and (why := self.due(SELECTION)):
            todo[SELECTION] = why
        after = [n for n in first if n in NEEDS_SELECTION and SELECTION in todo]
        for n in first:
            if n != SELECTION and n not in after and (why := self.due(n)):
                todo[n] = why
        ready = sorted(todo, key=lambda n: n != SELECTION)
        with ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            futures = {pool.submit(self.one, n, todo[n]): n for n in ready}
            while futures:
                f = next(as_completed(futures))
                name = futures.pop(f)
                if f.exception() is not None:
                    print(f"error: {f.exception()}", file=sys.stderr)
                elif name == SELECTION:
                    for n in after:
                        why = self.due(n)
                        if why:
                            futures[pool.submit(self.one, n, why)] = n

    def run_summary(self) -> None:
        """The summary notebook last (the others' results are its inputs), after writing how
        long this run's notebooks took (run_all.json)."""
        if self.failed or SUMMARY not in self.names:
            return
        if self.ran:  # the summary reports how long this run's notebooks took
            write_json(
                self.results / "run_all.json",
                {
                    "command": shlex.join(["./run_all.sh", *self.argv]),
                    "profile": self.args.profile,
                    "jobs": self.args.jobs,
                    "notebooks": self.ran,
                    "seconds_before_summary": round(time.perf_counter() - self.t0, 1),
                },
            )
        why = self.due(SUMMARY)
        if why:
            try:
                self.one(SUMMARY, why)
            except NotebookFailed as err:
                print(f"error: {err}", file=sys.stderr)
                return
        self.sync_headline()

    def sync_headline(self) -> None:
        """Rewrite README.md's headline blocks from the committed results folder, when this run
        wrote it (another profile's or folder's numbers never reach the README)."""
        readme = PACKAGE.parent / "README.md"
        committed = (PACKAGE.parent / "results").resolve()
        if self.results.resolve() != committed or not readme.exists() or not self.ran:
            return
        from paperlib.reports.headline import BEGIN, sync_readme

        if BEGIN in readme.read_text():
            same = sync_readme(readme, self.results)
            print(
                f"README.md: headline blocks {'unchanged' if same else 'rewritten from results/'}"
            )


def main(argv: list[str] | None = None) -> int:
    """``./run_all.sh``: parse, refuse before writing anything, then run what is due."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rest, pairs = _take_overrides(argv)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args = _parser().parse_args(rest)
    args.p = pairs  # taken out above; the option stays declared for --help
    try:
        run = _Run.checked(args, argv)
    except (ParameterError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run.prepare_environment()
    run.run_notebooks()
    run.run_summary()
    total = time.perf_counter() - run.t0
    print(f"total wall time: {total:.0f} s ({total / 60:.1f} min)")
    if run.failed:
        print(
            f"FAILED: {run.failed}; other notebooks' results were left as they were.",
            file=sys.stderr,
        )
        return 1
    return 0


def parse_value(text: str) -> Any:
    """A ``-p`` value: JSON where it parses (``3``, ``[1, 2]``, ``"timit"``), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


if __name__ == "__main__":
    sys.exit(main())
