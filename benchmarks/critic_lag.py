"""How far does the images `cmi` critic fall behind its encoder between bursts, per variant? (issue 20)

    python benchmarks/critic_lag.py --seed 2 --from-step 400 \
        --variant preset --variant n12:objective__n_critic=12 [--only n12] \
        [--out results/qualification/critic_lag]

Each variant resumes the trained images `cmi` run of `--seed` (alpha = beta = 1, the quick
profile; trained first if runs/ lacks it) from its checkpoint at `--from-step`, after beta has
ramped in, with the variant's critic settings, and trains it to the run's last step in a
scratch folder (``runs/_critic_lag/``). Every catch-up burst logs the critic's reading on the
validation rows just before it (``critic_lag_before``: the critic the encoder trained
against) and just after it (``critic_lag_after``: caught up on the current encoder). The
mean reading after the bursts over the mean before them is the lag: 1.0 is a critic that
keeps up. At the last step the
monitor's fresh critic of the other family reads the same rows (``--no-monitor`` skips it, 3
minutes a variant).

Four bursts give four lag readings a variant, where one monitor reading at one step moves
with the critic's phase (docs/DESIGN.md, "What the bursts do not fix"). The `preset` variant
retraces the original run's steps exactly (a check that the resume is faithful: its
validation ELBO matches the run's history). Writes ``lag.json`` (with provenance) and README.md;
`--only` runs one variant and merges it into an existing ``lag.json`` (two processes, one a
core).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from paperlib import config, records
from paperlib.data import load_data, make_loaders
from paperlib.models import build_model
from paperlib.records import load_checkpoint, provenance, write_json
from paperlib.studies import experiment
from paperlib.training.regularizers import build_objective
from paperlib.training.train import _read_history, fit

LAG_KEYS = ("critic_lag_before", "critic_lag_after")


def parse_variant(text: str) -> tuple[str, dict]:
    """``name[:key=value,key=value]`` -> (name, overrides); values as JSON where they parse."""
    name, _, rest = text.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        if "=" not in item:
            raise SystemExit(f"--variant takes NAME:KEY=VALUE,..., got {text!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


def resume_variant(source: Path, step: int, cfg, scratch: Path) -> Path:
    """A scratch run folder whose only checkpoint is `source`'s at `step`, relabelled with the
    variant's config (so `fit` resumes it), the critic's and the model's optimisers at the
    variant's learning rates."""
    payload = load_checkpoint(source / "checkpoints" / f"step_{step:07d}.pt")
    payload["config"] = cfg.to_dict()
    for group in payload["objective"]["_extra_state"]["critic_opt"]["param_groups"]:
        group["lr"] = cfg.objective.critic_lr
    for group in payload["optimizer"]["param_groups"]:  # the model's (a two-timescale variant)
        group["lr"] = cfg.train.lr
    scratch.mkdir(parents=True, exist_ok=True)
    for old in scratch.glob("checkpoints/*"):
        old.unlink()
    (scratch / "history.csv").unlink(missing_ok=True)
    path = scratch / "checkpoints" / f"step_{step:07d}.pt"
    path.parent.mkdir(exist_ok=True)
    torch.save(payload, path)  # the run's own RNG state, data position and best-so-far
    return scratch


def run_variant(name, overrides, args) -> dict:
    base = config.load("quick", "images")
    source_cfg = experiment.run_config(base, "cmi", args.seed, alpha=1.0, beta=1.0)
    bundle = load_data(source_cfg.data)
    source = records.run_dir_for(source_cfg)
    if not (source / "checkpoints" / f"step_{args.from_step:07d}.pt").exists():
        print(f"training the source run {source.name} (its checkpoint at {args.from_step})")
        experiment.train_run(source_cfg, bundle)
    monitor = {} if args.no_monitor else {"objective__monitor_every": source_cfg.train.steps}
    cfg = source_cfg.replace(**{**monitor, **overrides})
    if args.no_monitor:
        cfg = cfg.replace(objective__monitor_every=0)
    scratch = resume_variant(
        source, args.from_step, cfg, Path("runs") / "_critic_lag" / f"{name}_s{args.seed}"
    )
    torch.manual_seed(args.seed)
    loaders = make_loaders(cfg.data, bundle, seed=cfg.train.seed)
    model = build_model(cfg.model, bundle.info)
    objective = build_objective(cfg.objective, model, seed=cfg.train.seed)
    t0 = time.perf_counter()
    history = fit(model, objective, loaders, cfg, run_dir=scratch)
    seconds = time.perf_counter() - t0
    bursts = [
        {"step": int(r["step"]), **{k: float(r[k]) for k in LAG_KEYS}}
        for r in history.rows
        if "critic_lag_before" in r and r["step"] > args.from_step
    ]
    for b in bursts:
        b["lag"] = b["critic_lag_after"] / max(b["critic_lag_before"], 1e-9)
    last = history.rows[-1]
    hist = source / "history.csv"
    source_rows = _read_history(hist, cfg.train.steps) if hist.exists() else []
    source_val = float(source_rows[-1].get("val_elbo", "nan")) if source_rows else float("nan")
    out = {
        "overrides": overrides,
        "bursts": bursts,
        # the lag of the mean readings (a ratio per burst is ruled by its smallest reading)
        "mean_lag": _mean_lag(bursts),
        "final_critic": float(last.get("mi_zs_val_critic", float("nan"))),
        "final_other": float(last.get("mi_zs_val_other", float("nan"))),
        "final_ratio": float(last.get("monitor_ratio", float("nan"))),
        "val_elbo": float(last.get("val_elbo", float("nan"))),
        "source_val_elbo": source_val,
        "seconds": seconds,
        "seconds_per_step": seconds / (cfg.train.steps - args.from_step),
        "config": cfg.to_dict(),  # the variant's whole config (provenance)
    }
    print(
        f"{name}: lag (after/before) "
        + ", ".join(f"{b['step']}: {b['critic_lag_before']:.2f}->{b['critic_lag_after']:.2f}"
                    for b in bursts)
        + f"; mean {out['mean_lag']:.2f}x; monitor at the end {out['final_ratio']:.2f}x; "
        f"{out['seconds_per_step']:.2f} s a step"
    )  # fmt: skip
    return out


def _mean_lag(bursts: list[dict]) -> float:
    """mean reading after the bursts / mean reading before them (NaN without bursts)."""
    if not bursts:
        return float("nan")
    after = np.mean([b["critic_lag_after"] for b in bursts])
    return float(after / max(np.mean([b["critic_lag_before"] for b in bursts]), 1e-9))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2, help="the source run's seed (a validation seed)")
    ap.add_argument("--from-step", type=int, default=400, help="a checkpointed step after beta")
    ap.add_argument(
        "--variant", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
        help="a critic setting to resume with, e.g. n12:objective__n_critic=12 (repeatable)",
    )  # fmt: skip
    ap.add_argument("--only", default=None, help="run this variant only, merge into lag.json")
    ap.add_argument("--no-monitor", action="store_true", help="skip the final other-family fit")
    ap.add_argument("--out", type=Path, default=Path("results/qualification/critic_lag"))
    args = ap.parse_args(argv)
    variants = dict(parse_variant(v) for v in (args.variant or ["preset"]))
    if args.only is not None:
        if args.only not in variants:
            ap.error(f"--only {args.only!r} is not one of the variants {sorted(variants)}")
        variants = {args.only: variants[args.only]}
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/critic_lag.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    path = args.out / "lag.json"
    for name, overrides in variants.items():
        result = run_variant(name, overrides, args)
        # read after the run: another process (`--only`) may have merged its row meanwhile
        record = json.loads(path.read_text()) if path.exists() else {"variants": {}}
        meta = provenance()
        # one row a variant and seed
        record["variants"][f"{name}, seed {args.seed}"] = {
            **result, "command": command, "seed": args.seed, "from_step": args.from_step,
            "git_commit": meta.get("git_commit"),
        }  # fmt: skip
        record["_meta"] = meta
        write_json(path, record)
    (args.out / "README.md").write_text(render(record))
    from paperlib.reports.plots import save_figure

    save_figure(figure(record), args.out / "lag")
    return 0


def _finite(x) -> bool:
    """A number that is not NaN (JSON writes NaN as null: None counts as missing too)."""
    return x is not None and bool(np.isfinite(x))


def figure(record: dict):
    """One panel a variant: the critic's reading on validation rows just before each burst and
    just after it, against the step, beside the other family's reading at the last step."""
    from paperlib.reports import plots

    names = list(record["variants"])
    with plots.style():
        fig, axes = plots.panel_grid(len(names), max_cols=4, panel=(3.0, 2.4))
        for ax, name in zip(axes, names):
            v = record["variants"][name]
            steps = [b["step"] for b in v["bursts"]]
            ax.plot(steps, [b["critic_lag_before"] for b in v["bursts"]], "o-", ms=3,
                    label="before a burst")  # fmt: skip
            ax.plot(steps, [b["critic_lag_after"] for b in v["bursts"]], "s-", ms=3,
                    label="after it")  # fmt: skip
            if _finite(v.get("final_other")):
                ax.axhline(v["final_other"], color="0.4", ls="--", lw=1,
                           label="other family, last step")  # fmt: skip
            ax.set_title(name)
            ax.set_ylim(-0.3, 1.6)
            for line in ax.lines:  # a reading off the axis (n0: -3877 nats) at its edge
                line.set_ydata(np.clip(line.get_ydata(), -0.3, 1.6))
            ax.set_xlabel("step")
        axes[0].set_ylabel("I(z; s_window) read [nats]")
        axes[0].legend(loc="lower left", fontsize=7)
        fig.suptitle("readings below -0.3 nats are drawn at the edge", fontsize=8)
    return fig


def render(record: dict) -> str:
    """The variants side by side: mean readings before and after the bursts, the lag, the
    monitor at the last step, the seconds a step."""
    rows = []
    for name, v in record["variants"].items():
        before = np.array([b["critic_lag_before"] for b in v["bursts"]])
        after = np.array([b["critic_lag_after"] for b in v["bursts"]])
        # a mean reading below 0.05 nats before the bursts: the lag is unbounded ("-")
        lag = f"{v['mean_lag']:.2f}x" if before.mean() > 0.05 else "–"
        final = (
            f"{v['final_critic']:.2f} / {v['final_other']:.2f} ({v['final_ratio']:.2f}x)"
            if _finite(v["final_ratio"])
            else "–"
        )
        rows.append(
            f"| {name} | {len(before)} | {before.mean():.2f} ({before.min():.2f} to "
            f"{before.max():.2f}) | {after.mean():.2f} | {lag} | {final} | "
            + (f"{v['seconds_per_step']:.2f} |" if _finite(v["seconds_per_step"]) else "– |")
        )
    overrides = [
        f"- `{name}`: " + (", ".join(f"`{k}={val}`" for k, val in v["overrides"].items()) or "the preset")
        + f" (`{v['command']}`)"
        for name, v in record["variants"].items()
    ]  # fmt: skip
    return "\n".join([
        "# How far the images `cmi` critic falls behind its encoder between bursts",
        "",
        "Each variant resumes one trained `cmi` run (alpha = beta = 1) after beta has ramped in "
        "and trains it to the last step with its critic settings. At each catch-up burst the "
        "critic is read on the validation rows before and after; the lag is mean after / mean "
        "before (1.0 keeps up). The monitor column is the last step's: the training "
        "critic (before that step's burst) against a fresh critic of the other family.",
        "",
        "| variant | bursts | before a burst: mean (min to max), nats | after | lag | "
        "monitor at the end: critic / other | s a step |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *overrides,
        "",
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
