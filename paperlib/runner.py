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
- One log file per notebook in ``results/_logs/``; the total wall time is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from paperlib.config import PROFILES
from paperlib.notebooks import NOTEBOOK_DIR, SPECS, ParameterError, notebook_names, validate

ROOT = NOTEBOOK_DIR.parent
SUMMARY = "04_summary"
#: notebooks that read notebook 03's weight selection, so run after it
SELECTION = "03_information_plane"
NEEDS_SELECTION = ("01_speech_dsae", "02_images_pixelcnn_vae")


class NotebookFailed(RuntimeError):
    """A notebook raised in one of its cells."""


def inputs_hash(name: str, profile: str) -> str:
    """sha256 of what a notebook's results depend on: its source, paperlib and the profile."""
    h = hashlib.sha256(profile.encode())
    files = [NOTEBOOK_DIR / f"{name}.py", *sorted(Path(ROOT, "paperlib").rglob("*.py"))]
    if name in NEEDS_SELECTION:  # the weights notebook 03 chose are an input of 01 and 02
        files.append(Path(ROOT, "results", "03_information_plane", "selected_weights.json"))
    for f in files:
        if f.exists():
            h.update(f.relative_to(ROOT).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _stamp(results: Path, name: str) -> Path:
    # in the git-ignored _logs/ folder: a fresh clone with committed results still reruns
    return results / "_logs" / f"{name}.inputs"


def is_up_to_date(name: str, results: Path, profile: str) -> bool:
    """True when this checkout already ran `name` in `profile` on exactly the current inputs."""
    stamp = _stamp(results, name)
    return (
        (results / name / "run.json").exists()
        and stamp.exists()
        and stamp.read_text().strip() == inputs_hash(name, profile)
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


def run_notebook(
    name: str, profile: str, results: Path, extra: dict[str, Any] | None = None
) -> float:
    """Execute one notebook into a staging folder, then move it into ``results/<name>``.

    Returns the wall time in seconds. Raises NotebookFailed naming the cell and its error.
    """
    import jupytext
    import nbformat
    import papermill as pm

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
    with open(log_path, "w") as log:
        try:
            pm.execute_notebook(
                str(input_path),
                str(output_path),
                parameters=params,
                cwd=str(NOTEBOOK_DIR),
                kernel_name="python3",
                progress_bar=False,
                log_output=True,
                stdout_file=log,
                stderr_file=log,
            )
        except pm.PapermillExecutionError as err:
            raise NotebookFailed(
                f"notebook {name} failed in cell [{err.exec_count}]: {err.ename}: {err.evalue}\n"
                f"  log: {log_path}\n  executed notebook: {output_path}"
            ) from None
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
    _stamp(results, name).write_text(inputs_hash(name, profile) + "\n")
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
    parser.add_argument("--results", default=str(ROOT / "results"), help="results folder")
    parser.add_argument(
        "-p",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="override a parameter of every selected notebook (JSON value)",
    )
    args = parser.parse_args(argv)

    try:
        if args.profile not in PROFILES:
            raise ParameterError(
                f"--profile {args.profile!r} is not accepted; choose one of {list(PROFILES)}"
            )
        if args.jobs < 1:
            raise ParameterError(f"--jobs must be >= 1, got {args.jobs}")
        names = _resolve_names(args.only)
        extra = {k: _parse_value(v) for k, v in args.p}
        for name in names:
            validate(name, {k: v for k, v in extra.items()})
    except ParameterError as err:
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
    results = Path(args.results)
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
            seconds = run_notebook(name, args.profile, results, extra)
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
