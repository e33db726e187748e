"""Where a `cmi` run's training time goes: the model, its critic, validation, monitor, bursts.

    python benchmarks/cmi_cost.py [--profile quick] [--experiment images] [--steps 100]
        [--threads 1] [--out results/benchmarks.json]

Trains a fresh `cmi` run (alpha = beta = 1) of the profile's preset in memory for `--steps`
steps, with the validation ELBO, the monitor and the catch-up burst every 50 steps and beta
on after a fifth of them, and times each part by wrapping it:

- the model's step (forward, loss with the critic's estimate, backward, Adam) is what is left
  of the loop's time;
- ``critic_step``: the training critic's per-step updates (``objective.n_critic`` of them);
- ``validate``: the validation ELBO (`_BestOnValidation.update`, best weights kept);
- ``monitor``: a fresh critic of the other family beside the training critic
  (`CMIObjective.monitor`, evaluation's budget);
- ``burst``: the catch-up burst (`CMIObjective.refresh`).

It then projects a whole run of the preset: per-step parts x ``train.steps``, validation x
steps / ``eval_every``, bursts x steps / ``critic_refresh_every``, monitors x steps /
``monitor_every``; and the same for `mi` at the same steps (its model step alone). Run it on a
quiet machine (nothing else training): the parts are measured one after another in one process.
Merges ``cmi_cost`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from paperlib import config, runtime
from paperlib.data import load_data, make_loaders
from paperlib.models import build_model
from paperlib.records import provenance, write_json
from paperlib.training import train
from paperlib.training.regularizers import build_objective

PARTS = ("critic_step", "validate", "monitor", "burst")


def timed(fn, name: str, clock: dict[str, list[float]]):
    """`fn`, with the wall time of every call appended to ``clock[name]``."""

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[name].append(time.perf_counter() - t0)

    return wrapper


def measure(cfg, bundle, steps: int) -> dict[str, float]:
    """Seconds of one short run of `cfg`: the loop, and each wrapped part (mean per call)."""
    cfg = cfg.replace(train__steps=steps, train__checkpoint_every=0, train__progress=False)
    clock: dict[str, list[float]] = defaultdict(list)
    runtime.seed_everything(cfg.train.seed)
    loaders = make_loaders(cfg.data, bundle, seed=cfg.train.seed)
    model = build_model(cfg.model, bundle.info)
    objective = build_objective(cfg.objective, model, seed=cfg.train.seed)
    for name, attr in (
        ("critic_step", "critic_step"),
        ("monitor", "monitor"),
        ("burst", "refresh"),
    ):
        if hasattr(objective, attr):
            # an instance attribute: fit looks the method up on the objective
            object.__setattr__(objective, attr, timed(getattr(objective, attr), name, clock))
    update = train._BestOnValidation.update
    train._BestOnValidation.update = timed(update, "validate", clock)
    try:
        t0 = time.perf_counter()
        train.fit(model, objective, loaders, cfg, run_dir=None)
        total = time.perf_counter() - t0
    finally:
        train._BestOnValidation.update = update
    # a monitor or burst that returned at once (not its step) is not a call of it
    calls = {k: [t for t in v if t > 1e-3] for k, v in clock.items()}
    out = {"steps": steps, "loop_seconds": total}
    for part in PARTS:
        ts = calls.get(part, [])
        out[f"{part}_calls"] = len(ts)
        out[f"{part}_seconds_per_call"] = sum(ts) / len(ts) if ts else 0.0
    spent = sum(sum(calls.get(p, [])) for p in PARTS)
    out["model_step_seconds"] = (total - spent) / steps
    out["critic_step_seconds"] = sum(calls.get("critic_step", [])) / steps
    return out


def project(m: dict[str, float], cfg) -> dict[str, float]:
    """Seconds of a whole run of `cfg` from the short run's per-call times."""
    steps, obj = cfg.train.steps, cfg.objective

    def count(every: int) -> int:
        return steps // every if every > 0 else 0

    parts = {
        "model": m["model_step_seconds"] * steps,
        "critic_step": m["critic_step_seconds"] * steps,
        "validate": m["validate_seconds_per_call"] * count(cfg.train.eval_every),
        "monitor": m["monitor_seconds_per_call"] * count(getattr(obj, "monitor_every", 0)),
        "burst": m["burst_seconds_per_call"] * count(getattr(obj, "critic_refresh_every", 0)),
    }
    parts["total"] = sum(parts.values())
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    ap.add_argument("--experiment", default="images", choices=("images", "speech"))
    ap.add_argument(
        "--steps",
        type=int,
        default=100,
        help="steps of the short run; its validation, monitor and bursts come every min(50, steps)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks.json"))
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    torch.set_num_threads(args.threads)
    base = config.load(args.profile, args.experiment)
    every = max(1, min(50, args.steps))
    o = base.objective
    # the preset's validation, monitor and bursts, every `every` steps where it has them
    periodic = {
        "train__eval_every": every,
        "objective__monitor_every": every if o.monitor_every > 0 else 0,
        "objective__critic_refresh_every": every if o.critic_refresh_every > 0 else 0,
    }
    cfgs = {
        "cmi": base.replace(
            objective__name="cmi", objective__alpha=1.0, objective__beta=1.0, **periodic,
            # beta on after a fifth of the short run: most steps pay the penalty's backward
            objective__warmup_steps=max(1, every // 5), objective__warmup_plateau=0,
            objective__beta_ramp_steps=max(1, every // 5),
        ),
        "mi": base.replace(objective__name="mi", objective__alpha=1.0, train__eval_every=every),
    }  # fmt: skip
    full = {
        "cmi": base.replace(objective__name="cmi", objective__alpha=1.0, objective__beta=1.0),
        "mi": base.replace(objective__name="mi", objective__alpha=1.0),
    }
    bundle = load_data(base.data)
    rows = {}
    for name, cfg in cfgs.items():
        m = measure(cfg, bundle, args.steps)
        rows[name] = {"measured": m, "projected_run": project(m, full[name])}
    steps = full["cmi"].train.steps
    print(f"{args.experiment} {args.profile}, {args.threads} thread(s); a run of {steps} steps:")
    print("| part | cmi: per call (s) | calls a run | cmi: seconds a run | share |")
    print("|---|---|---|---|---|")
    cm, cp = rows["cmi"]["measured"], rows["cmi"]["projected_run"]
    per_call = {
        "model": cm["model_step_seconds"],
        "critic_step": cm["critic_step_seconds"],
        **{p: cm[f"{p}_seconds_per_call"] for p in ("validate", "monitor", "burst")},
    }
    for part in ("model", "critic_step", "validate", "monitor", "burst"):
        n = cp[part] / per_call[part] if per_call[part] else 0
        print(f"| {part} | {per_call[part]:.3f} | {n:.0f} | {cp[part]:.1f} | "
              f"{cp[part] / cp['total']:.0%} |")  # fmt: skip
    mp = rows["mi"]["projected_run"]
    print(f"| total | | | {cp['total']:.1f} | |")
    print(f"mi, the same run length: {mp['total']:.1f} s (model step "
          f"{rows['mi']['measured']['model_step_seconds']:.3f} s); cmi / mi = "
          f"{cp['total'] / mp['total']:.1f}x")  # fmt: skip
    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    payload["cmi_cost"] = {
        "command": "python " + " ".join([Path(__file__).name, *(argv or sys.argv[1:])]),
        **provenance(),
        "profile": args.profile,
        "experiment": args.experiment,
        "threads": args.threads,
        "load_average": list(os.getloadavg()),
        "rows": rows,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out} (cmi_cost)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
