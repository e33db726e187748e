"""Where a profile's time goes, per notebook: training against each evaluation section.

Usage::

    python benchmarks/quick_profile.py [--results results] [--out results/benchmarks.json]

Reads what the notebooks recorded: each notebook's wall time (``run.json``) and, for every run
in its ``metrics.json``, the training seconds (``train_seconds``) and evaluation's seconds per
section (``eval_seconds_<section>``, written by ``paperlib.studies.experiment.evaluate_run``). Prints a
table per notebook and the share of evaluation, and merges it into ``results/benchmarks.json``
under ``profile_time``. Nothing is timed here, so it can run while other work runs.

A run found finished in ``runs/`` is not retrained, so its recorded training seconds can exceed
the notebook's wall time; "other" (floors, classifiers, figures, selection) is the wall time
left after training and evaluation, and 0 where cached runs make it negative.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "eval_seconds_"


def notebook_profile(folder: Path) -> dict | None:
    """{"wall", "train", "eval": {section: seconds}, "other", "runs"} of one notebook folder."""
    metrics_path, run_path = folder / "metrics.json", folder / "run.json"
    if not metrics_path.exists():
        return None
    metrics = json.loads(metrics_path.read_text())
    wall = json.loads(run_path.read_text()).get("wall_seconds", 0.0) if run_path.exists() else 0.0
    train, sections, runs = 0.0, {}, 0
    for group, values in metrics.items():
        if group.startswith("_"):
            continue
        seeds = values.get("train_seconds", {}).get("per_seed", [])
        runs += len(seeds)
        train += sum(v for v in seeds if v is not None)
        for key, v in values.items():
            if key.startswith(PREFIX):
                name = key[len(PREFIX) :]
                sections[name] = sections.get(name, 0.0) + sum(v.get("per_seed", []))
    spent = sum(sections.values())
    return {
        "wall": wall,
        "train": train,
        "eval": sections,
        "eval_total": spent,
        "other": max(wall - train - spent, 0.0),
        "runs": runs,
        "timed": bool(sections),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks.json")
    args = p.parse_args(argv)
    profile = {}
    for folder in sorted(f for f in args.results.iterdir() if f.is_dir() and f.name[:2].isdigit()):
        got = notebook_profile(folder)
        if got is None:
            continue
        profile[folder.name] = got
        print(f"\n{folder.name}: wall {got['wall']:.0f} s, {got['runs']} runs")
        if not got["timed"]:
            print("  evaluation sections not recorded (results from before they were timed)")
            continue
        print("| part | seconds | share |")
        print("|---|---|---|")
        total = got["train"] + got["eval_total"] + got["other"]
        parts = [("training", got["train"])]
        parts += [
            (f"evaluation: {k}", v) for k, v in sorted(got["eval"].items(), key=lambda kv: -kv[1])
        ]
        parts += [("other", got["other"])]
        for name, v in parts:
            print(f"| {name} | {v:.0f} | {v / total:.0%} |")
        print(f"evaluation: {got['eval_total'] / total:.0%} of the notebook's time")
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data["profile_time"] = profile
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwrote {args.out} (profile_time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
