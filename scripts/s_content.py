"""What s holds, for each real model, at random initialisation and after training (validation).

    python scripts/s_content.py [--profile quick] [--seed 300] [--steps N]

For the speech DSAE and the PixelCNN-VAE of the profile: an `mi` run (alpha 1) is trained on a
seed that nothing else uses, and `paperlib.evaluation.s_content.what_s_holds` reads x_t, x and the label
from one s_t, a window and s_1:T, before and after training (read-outs fitted on training items,
scored on validation items; never the test split). The table and the target it implies
(`choose_target`) go to ``results/s_content/`` (s_content.json with provenance, README.md) and
into docs/DESIGN.md, "What s holds".
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from paperlib import config, runtime
from paperlib.data import load_data
from paperlib.evaluation import s_content
from paperlib.models import build_model
from paperlib.records import provenance, write_json
from paperlib.studies import experiment

WINDOW = {"speech": 5, "images": 5}


def study(experiment_name: str, profile: str, seed: int, steps: int | None, items: int) -> dict:
    base = config.load(profile, experiment_name)
    if steps is not None:
        base = base.replace(train__steps=steps)
    bundle = load_data(base.data)
    cfg = experiment.run_config(base, "mi", seed, alpha=1.0)
    runtime.seed_everything(seed)
    untrained = build_model(cfg.model, bundle.info)
    t0 = time.perf_counter()
    trained, _, history = experiment.train_run(cfg, bundle)
    tables = {}
    for state, model in (("random init", untrained), ("trained (mi)", trained)):
        tr = s_content.encode(model, bundle.train, items, seed)
        va = s_content.encode(model, bundle.val, items // 2, seed)
        tables[state] = s_content.what_s_holds(tr, va, window=WINDOW[experiment_name], seed=seed)
    return {
        "tables": tables,
        "target": s_content.choose_target(tables["trained (mi)"]),
        "window": WINDOW[experiment_name],
        "steps": history.steps,
        "best_step": getattr(history, "best_step", None),
        "seconds": time.perf_counter() - t0,
        "config": cfg.to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    ap.add_argument("--seed", type=int, default=300, help="a seed no other study uses")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: preset)")
    ap.add_argument("--items", type=int, default=1500, help="training items for the read-outs")
    ap.add_argument("--experiments", nargs="+", default=["speech", "images"])
    ap.add_argument("--out", type=Path, default=Path("results/s_content"))
    args = ap.parse_args(argv)
    out = {}
    lines = ["# What s holds (validation split)", ""]
    for name in args.experiments:
        res = study(name, args.profile, args.seed, args.steps, args.items)
        out[name] = res
        lines += [
            f"## {name}: target `{res['target']}` (window {res['window']}, {res['steps']} steps)",
            "",
            s_content.format_table(res["tables"]),
            "",
        ]
        print("\n".join(lines[-4:]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "s_content.json", {"studies": out, "_meta": provenance()})
    (args.out / "README.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
