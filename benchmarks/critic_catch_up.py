"""Does the images `cmi` training critic keep up with the encoder it trains against? (issue 20)

    python benchmarks/critic_catch_up.py [--seed 0] [--set objective__n_critic=8 ...]
        [--continue-steps 25 75 100 200] [--out results/qualification/catch_up]

Trains (or reads from runs/) the images `cmi` run of the profile (quick) at alpha = beta = 1 with the given
config overrides, and prints the training monitor's readings (the run's own critic against
a fresh critic of the other family, on validation rows). Then it continues a copy of the
run's final critic on the *frozen* final encoder, on one posterior sample of each of 2000
training items, and reads it on validation rows after each block of updates: a critic that
lags a moving encoder catches up within some updates; one that is stuck does not. This is
the measurement behind the catch-up bursts (`CMIObjective.refresh`, docs/DESIGN.md,
"The live critic catches up"). Writes ``catch_up.json`` (with provenance) and README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from paperlib import config
from paperlib.data import load_data, make_loaders
from paperlib.estimators import instrument
from paperlib.records import provenance, write_json
from paperlib.studies import experiment
from paperlib.training.train import BatchStream, _first_items

MONITOR_KEYS = ("mi_zs_val_critic", "mi_zs_val_other", "monitor_ratio")


def parse_value(text: str):
    """A --set value as JSON where it parses (numbers, true/false), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    ap.add_argument("--seed", type=int, default=0, help="training seed (a validation seed)")
    ap.add_argument("--run-root", type=Path, default=None, help="run folders (default: runs/)")
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE",
        help="config overrides, e.g. objective__n_critic=8 objective__critic_refresh_every=0",
    )  # fmt: skip
    ap.add_argument("--continue-steps", type=int, nargs="*", default=[25, 75, 100, 200])
    ap.add_argument(
        "--per-step", type=int, nargs="*", default=[],
        help="then continue the caught-up critic with the run's own per-step training (its "
        "n_critic updates on each training batch and its replay) on the frozen encoder for "
        "these blocks of model steps: does that training itself lose the dependence?",
    )  # fmt: skip
    ap.add_argument("--fit-items", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("results/qualification/catch_up"))
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set takes KEY=VALUE (e.g. objective__n_critic=8), got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = parse_value(value)
    base = config.load(args.profile, "images", **overrides)
    cfg = experiment.run_config(base, "cmi", args.seed, alpha=1.0, beta=1.0)
    bundle = load_data(cfg.data)
    t0 = time.perf_counter()
    model, objective, history = experiment.train_run(cfg, bundle, run_root=args.run_root)
    seconds = time.perf_counter() - t0
    monitor = [
        {"step": int(r["step"]), **{k: float(r[k]) for k in MONITOR_KEYS}}
        for r in history.rows
        if "monitor_ratio" in r
    ]
    for m in monitor:
        print(
            f"step {m['step']}: training critic {m['mi_zs_val_critic']:.3f} nats, "
            f"other family {m['mi_zs_val_other']:.3f} ({m['monitor_ratio']:.2f}x)"
        )
    # the final critic, continued on the frozen final encoder
    loaders = make_loaders(cfg.data, bundle, seed=args.seed)
    x_fit = _first_items(loaders["train"].dataset, args.fit_items)
    x_val = _first_items(loaders["val"].dataset, cfg.train.val_items)
    model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        z_val, s_val = instrument.encode(model, x_val)
        z_fit, s_fit = instrument.encode(model, x_fit)
    critic = copy.deepcopy(objective.critics["zs"])
    rows = cfg.data.batch_size * (1 + cfg.objective.critic_replay)
    done, curve = 0, [(0, instrument.critic_reading(critic, z_val, s_val))]
    for k in args.continue_steps:
        instrument.fit_critic(
            critic, instrument.rows_sampler(z_fit, s_fit), steps=k, batch_size=rows,
            lr=cfg.objective.critic_lr, seed=args.seed + done,
        )  # fmt: skip
        done += k
        curve.append((done, instrument.critic_reading(critic, z_val, s_val)))
    print("final critic continued on the frozen encoder (updates: nats):")
    print("  " + ", ".join(f"{n}: {v:.3f}" for n, v in curve))
    per_step = []
    if args.per_step:
        # the caught-up critic, trained on as the run trains it at every step (its optimiser
        # and replay buffer), on fresh batches of the frozen encoder: no encoder moves here
        trainer = copy.deepcopy(objective)
        trainer.critics["zs"].load_state_dict(critic.state_dict())
        stream = BatchStream(loaders["train"].dataset, cfg.data.batch_size, args.seed + 1)
        done, per_step = 0, [(0, curve[-1][1])]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed + 1)
            for k in args.per_step:
                for i in range(done, done + k):
                    with torch.no_grad():
                        out = model(stream.batch(i)["x"])
                    trainer.critic_step(out)
                done += k
                per_step.append(
                    (done, instrument.critic_reading(trainer.critics["zs"], z_val, s_val))
                )
        print("then the run's per-step training on the frozen encoder (model steps: nats):")
        print("  " + ", ".join(f"{n}: {v:.3f}" for n, v in per_step))
    command = "python benchmarks/critic_catch_up.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    record = {
        "command": command,
        "seed": args.seed,
        "overrides": overrides,
        "monitor": monitor,
        "continued": [{"updates": n, "nats": v} for n, v in curve],
        "per_step": [{"model_steps": n, "nats": v} for n, v in per_step],
        "train_seconds": seconds,
        "config": cfg.to_dict(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "catch_up.json", {**record, "_meta": provenance()})
    lines = [
        "# Does the images `cmi` critic keep up?",
        "",
        f"`{command}`",
        "",
        "| step | training critic (nats) | other family (nats) | ratio |",
        "|---|---|---|---|",
        *(
            f"| {m['step']} | {m['mi_zs_val_critic']:.3f} | {m['mi_zs_val_other']:.3f} | "
            f"{m['monitor_ratio']:.2f}x |"
            for m in monitor
        ),
        "",
        "The final critic continued on the frozen final encoder (one posterior sample of each "
        f"of {args.fit_items} training items), read on validation rows:",
        "",
        "| updates | " + " | ".join(str(n) for n, _ in curve) + " |",
        "|---|" + "---|" * len(curve),
        "| nats | " + " | ".join(f"{v:.3f}" for _, v in curve) + " |",
        "",
    ]
    if per_step:
        lines += [
            "Then the caught-up critic trained on as the run trains it at each step "
            f"({cfg.objective.n_critic} updates on each batch and its replay), on the frozen "
            "encoder:",
            "",
            "| model steps | " + " | ".join(str(n) for n, _ in per_step) + " |",
            "|---|" + "---|" * len(per_step),
            "| nats | " + " | ".join(f"{v:.3f}" for _, v in per_step) + " |",
            "",
        ]
    (args.out / "README.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
