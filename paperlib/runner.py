"""Execute the suite's notebooks with papermill: ``python -m paperlib.runner`` (run_all.sh).

- Each ``notebooks/NN_name.py`` (jupytext percent source) runs with the profile's parameters.
- A notebook executes into a staging folder; only when it succeeds does its folder replace
  ``results/NN_name/``. A failure names the notebook and the failing cell's error, exits non-zero,
  and leaves every earlier result untouched.
- A notebook that this checkout already ran in the same profile on exactly the current inputs
  (a content hash of its source, paperlib and the recorded weights) is skipped unless
  ``--force``. The stamp lives in the git-ignored ``results/_logs/``, so a fresh clone
  regenerates every result even when results are committed.
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
from paperlib.notebooks import NOTEBOOK_DIR, find_notebook_dir
from paperlib.params import SPECS, ParameterError, notebook_names, validate
from paperlib.runtime import WORKDIR_ENV, in_work_dir, work_dir

PACKAGE = Path(__file__).resolve().parent
SUMMARY = "04_summary"
#: notebooks that read notebook 03's weight selection, so run after it
SELECTION = "03_information_plane"
NEEDS_SELECTION = ("01_speech_dsae", "02_images_pixelcnn_vae")


class NotebookFailed(RuntimeError):
    """A notebook raised in one of its cells."""


def inputs_hash(name: str, profile: str, results: Path | None = None) -> str:
    """sha256 of what a notebook's results depend on: its source, paperlib and the profile."""
    h = hashlib.sha256(profile.encode())
    source = NOTEBOOK_DIR / f"{name}.py"
    h.update(f"notebooks/{source.name}".encode())
    h.update(source.read_bytes())
    library = [p for p in sorted(PACKAGE.rglob("*.py")) if "_notebooks" not in p.parts]
    for f in library:
        if f.exists():
            h.update(f.relative_to(PACKAGE.parent).as_posix().encode())
            h.update(f.read_bytes())
    selection = Path(results) / SELECTION / "selected_weights.json" if results else None
    if name in NEEDS_SELECTION and selection is not None and selection.exists():
        # the weights notebook 03 chose are an input of 01 and 02
        h.update(selection.read_bytes())
    return h.hexdigest()


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


def is_up_to_date(name: str, results: Path, profile: str) -> bool:
    """True when this checkout already ran `name` in `profile` on exactly the current inputs."""
    stamp = _stamp(results, name)
    return (
        (results / name / "run.json").exists()
        and stamp.exists()
        and stamp.read_text().strip() == inputs_hash(name, profile, results)
    )


def _resolve_names(only: list[str] | None) -> list[str]:
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
    to notebook NN only, which must be among `names`; a plain NAME to every notebook.
    """
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, text in pairs:
        targets = names
        if ":" in key:
            prefix, key = key.split(":", 1)
            (target,) = _resolve_names([prefix])
            if target not in names:
                raise ParameterError(
                    f"-p {prefix}:{key}: notebook {target} is not among the selected {names}"
                )
            targets = [target]
        for n in targets:
            out[n][key] = _parse_value(text)
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
    name: str, profile: str, results: Path, extra: dict[str, Any] | None = None
) -> float:
    """Execute one notebook into a staging folder, then move it into ``results/<name>``.

    Returns the wall time in seconds. Raises NotebookFailed naming the cell and its error.
    """
    import jupytext
    import nbformat

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
            },
            indent=2,
        )
        + "\n"
    )
    _swap_into_place(staging, results / name)
    _stamp(results, name).write_text(inputs_hash(name, profile, results) + "\n")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_all.sh", description=__doc__.split("\n")[0])
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
    parser.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    parser.add_argument(
        "--results",
        default=None,
        help="results folder (default: results/ of the checkout, else of the working folder)",
    )
    parser.add_argument(
        "-p",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="override a parameter of every selected notebook (JSON value); NN:NAME (e.g. "
        "03:experiments) overrides it in notebook NN only",
    )
    args = parser.parse_args(argv)

    try:
        if args.profile not in PROFILES:
            raise ParameterError(
                f"--profile {args.profile!r} is not accepted; choose one of {list(PROFILES)}"
            )
        if args.jobs < 1:
            raise ParameterError(f"--jobs must be >= 1, got {args.jobs}")
        find_notebook_dir()  # a wheel without its notebooks: say where we looked
        names = _resolve_names(args.only)
        extra = overrides(args.p, names)
        for name in names:
            validate(name, extra[name])
    except (ParameterError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    # Kernels start `python` from PATH: make it this interpreter's environment.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    # Parallel notebooks share the cores: more threads than cores makes torch's small kernels
    # spin and slows everything down many times over. A user's own setting is kept.
    threads = str(max(1, (os.cpu_count() or 1) // min(args.jobs, max(len(names), 1))))
    # torch lets MKL_NUM_THREADS override OMP_NUM_THREADS: both take the user's OMP setting.
    threads = os.environ.get("OMP_NUM_THREADS", threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    headless_environment()
    results = Path(args.results) if args.results else in_work_dir("results")
    results.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    todo = [n for n in names if args.force or not is_up_to_date(n, results, args.profile)]
    for n in sorted(set(names) - set(todo)):
        print(f"skip  {n} (up to date for profile {args.profile}; --force reruns it)")
    first = [n for n in todo if n != SUMMARY]
    failed: list[str] = []

    def one(name: str) -> None:
        if failed:  # another notebook failed: start nothing new
            return
        print(f"run   {name} (profile {args.profile}) ...", flush=True)
        try:
            seconds = run_notebook(name, args.profile, results, extra[name])
        except BaseException:
            failed.append(name)
            raise
        print(f"done  {name} in {seconds:.0f} s -> {results / name}", flush=True)

    # 01 and 02 read the weights that 03 selects: when 03 runs too, they wait for it
    after = [n for n in first if n in NEEDS_SELECTION and SELECTION in first]
    ready = sorted((n for n in first if n not in after), key=lambda n: n != SELECTION)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(one, n): n for n in ready}
        while futures:
            f = next(as_completed(futures))
            name = futures.pop(f)
            if f.exception() is not None:
                print(f"error: {f.exception()}", file=sys.stderr)
            elif name == SELECTION:
                futures.update({pool.submit(one, n): n for n in after})
    if not failed and SUMMARY in todo:
        if first:  # the summary reports how long this run's notebooks took
            (results / "run_all.json").write_text(
                json.dumps(
                    {
                        "command": shlex.join(["./run_all.sh", *(argv or sys.argv[1:])]),
                        "profile": args.profile,
                        "jobs": args.jobs,
                        "notebooks": first,
                        "seconds_before_summary": round(time.perf_counter() - t0, 1),
                    },
                    indent=2,
                )
                + "\n"
            )
        try:
            one(SUMMARY)
        except NotebookFailed as err:
            print(f"error: {err}", file=sys.stderr)
    total = time.perf_counter() - t0
    print(f"total wall time: {total:.0f} s ({total / 60:.1f} min)")
    if failed:
        print(
            f"FAILED: {failed}; other notebooks' results were left as they were.", file=sys.stderr
        )
        return 1
    return 0


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


if __name__ == "__main__":
    sys.exit(main())
