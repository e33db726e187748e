"""Two training runs at once on one machine: torch's default threads against paperlib's claims.

Usage::

    python benchmarks/threads.py [--steps 30] [--experiment images]

A user who starts a notebook in JupyterLab while ``run_all.sh`` trains has two processes that
each want every core. With torch's default (one OpenMP thread per core in each process) the
threads spin while they wait for each other and both runs slow down many times over. With
paperlib's thread claims (``paperlib.runtime.ThreadClaim``, taken by every ``fit``) the second
run sees the first one's claim, takes the cores that are left and says so in one line.

The script starts run A, waits until it trains, starts run B, and reports each run's median
ms/step while both train; then the same with the claims. Alone, for reference, one run with
all cores. Both runs are the quick preset's training step (the body of ``fit``) with ``elbo``.
Printed: ms/step per run and mode, and the slowdown of the concurrent modes against the
single run. ``OMP_NUM_THREADS`` is removed from the children's environment (it would decide
for them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(mode: str, steps: int, experiment: str, ready: Path, go: Path) -> None:
    import torch
    from torch import nn

    from paperlib import config, runtime
    from paperlib.data import load_data
    from paperlib.models import build_model
    from paperlib.studies.experiment import run_config
    from paperlib.training.regularizers import build_objective
    from paperlib.training.train import BatchStream

    cfg = run_config(config.load("quick", experiment, train__progress=False), "elbo", 0)
    bundle = load_data(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, bundle.info)
    objective = build_objective(cfg.objective, model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    stream = BatchStream(bundle.train, cfg.data.batch_size, 0)

    def step(i: int) -> float:
        t0 = time.perf_counter()
        loss, _ = objective.model_loss(model(stream.batch(i)["x"]), i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        return time.perf_counter() - t0

    claim = runtime.ThreadClaim() if mode == "claim" else None
    if claim is not None:
        claim.__enter__()
    else:
        torch.set_num_threads(runtime.cpu_cores())  # what torch does by default
    try:
        for i in range(2):  # warm-up
            step(i)
        ready.write_text("ready")
        while not go.exists():
            step(0)  # keep the cores as busy as a training run does until both run
        times = [step(i) for i in range(2, 2 + steps)]
    finally:
        if claim is not None:
            claim.__exit__(None, None, None)
    print(
        "RESULT "
        + json.dumps(
            {
                "threads": torch.get_num_threads(),
                "ms_per_step": 1000 * statistics.median(times),
                "warning": claim.warning if claim is not None else None,
            }
        )
    )


def _start(mode: str, args, tmp: Path, name: str):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    ready, go = tmp / f"{name}.ready", tmp / "go"
    cmd = [sys.executable, __file__, "--child", mode, "--steps", str(args.steps)]
    cmd += ["--experiment", args.experiment, "--ready", str(ready), "--go", str(go)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, ready


def _result(proc) -> dict:
    out, err = proc.communicate(timeout=1800)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: a timing child failed:\n{err.decode()[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def run_pair(mode: str, args) -> list[dict]:
    """Run A, then run B once A trains; both time `steps` steps while the other trains."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        procs = []
        for name in ("A", "B"):
            proc, ready = _start(mode, args, tmp, name)
            while not ready.exists():
                if proc.poll() is not None:
                    return [_result(proc)]
                time.sleep(0.1)
            procs.append(proc)
        (tmp / "go").write_text("go")
        return [_result(p) for p in procs]


def run_alone(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc, ready = _start("default", args, Path(tmp), "alone")
        while not ready.exists():
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        (Path(tmp) / "go").write_text("go")
        return _result(proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--experiment", default="images", choices=("images", "speech"))
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks.json"))
    p.add_argument("--child", choices=("default", "claim"), help=argparse.SUPPRESS)
    p.add_argument("--ready", help=argparse.SUPPRESS)
    p.add_argument("--go", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, args.steps, args.experiment, Path(args.ready), Path(args.go))
        return 0
    alone = run_alone(args)
    before = run_pair("default", args)
    after = run_pair("claim", args)
    print(f"{args.experiment} quick preset, elbo, {args.steps} timed steps per run")
    print(f"alone, {alone['threads']} threads: {alone['ms_per_step']:.0f} ms/step")
    for label, pair in (("torch default threads", before), ("paperlib thread claims", after)):
        for name, r in zip("AB", pair):
            print(
                f"{label:24s} run {name}: {r['threads']} thread(s), {r['ms_per_step']:7.0f} "
                f"ms/step ({r['ms_per_step'] / alone['ms_per_step']:.1f}x the run alone)"
            )
    warning = next((r["warning"] for r in after if r.get("warning")), None)
    print(f"second run's warning: {warning}")
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["threads"] = {
        "experiment": args.experiment,
        "steps": args.steps,
        "alone": alone,
        "torch_default": before,
        "paperlib_claims": after,
    }
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out} (threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
