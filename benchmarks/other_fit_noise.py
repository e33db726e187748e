"""How far does the other family's reading move from fit to fit on one frozen encoder? (issue 20)

    python benchmarks/other_fit_noise.py RUN_DIR [--fits 6] [--only 0,1,2] \
        [--out results/qualification/other_fit_noise]

Loads a finished run folder (its best validation weights, ``checkpoints/best.pt``) and fits
evaluation's other-family critic (`instrument.fit_other` on `instrument.fit_and_select`'s pool,
`run_metrics.other_fit_settings`) `--fits` times, each fit with its own seed for the posterior
samples and the critic, and reads every fit on the same test rows, encoded once as
`run_metrics.evaluate_run` encodes them. The run's saved last-monitor critic
(``other_family.pt``, when it was fitted as evaluation fits) is read there too.

The tables bracket a seed's I(z;s) by a bootstrap over its test rows. That bracket holds the
rows' sampling noise, not the fit's: this script measures the second. When the sd across fits
is as large as the bracket's half-width, a one-seed bracket understates the instrument's
uncertainty (intervals across seeds hold both: each seed has its own fit).

Writes ``fits.json`` (readings, provenance) and README.md under ``--out``/<run folder name>;
``--only`` fits the listed seeds and merges them into an existing ``fits.json`` (two processes,
one a core).
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

from paperlib.config import Config
from paperlib.data import load_data, make_loaders
from paperlib.estimators import instrument
from paperlib.evaluation import evaluate
from paperlib.models import build_model
from paperlib.records import load_checkpoint, provenance, write_json
from paperlib.studies import run_metrics
from paperlib.training import train


def load_run(run_dir: Path):
    """(cfg, model at its best validation weights, the saved last-monitor critic or None)."""
    best = run_dir / "checkpoints" / "best.pt"
    if not best.exists():
        raise SystemExit(
            f"{best} not found: RUN_DIR must be a finished run folder with validation "
            "(runs/<experiment>/<profile>/<run>/)"
        )
    payload = load_checkpoint(best)
    cfg = Config.from_dict(payload["config"])
    bundle = load_data(cfg.data)
    model = build_model(cfg.model, bundle.info)
    model.load_state_dict(payload["model"])
    model.eval()
    history = train.History(steps=int(payload["step"]), best_step=int(payload["step"]))
    saved = train.saved_other_family(run_dir / "checkpoints", history)
    return cfg, bundle, model, saved


def reading_rows(model, cfg: Config, bundle, split: str = "test"):
    """The (z, s) rows that `run_metrics.evaluate_run` reads the other family on, and the
    training items it fits on, drawn in its order with its seeds."""
    seed, n = cfg.train.seed, cfg.eval.max_items
    loaders = make_loaders(cfg.data, bundle, seed=seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc = {
        name: evaluate.encode_dataset(
            model, loaders[name], max_items=n, generator=gen, sequences=True
        )
        for name in ("train", split)
    }
    z, s = torch.as_tensor(enc[split]["z_sample"]), torch.as_tensor(enc[split]["s_seq"])
    return z.float(), s.float(), run_metrics._items_x(loaders["train"].dataset, n)


def one_fit(model, cfg: Config, x_train, z, s, seed: int) -> dict[str, float]:
    """Evaluation's other-family fit with `seed` for its pool and critic, read on (z, s)."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    fit = run_metrics.other_fit_settings(cfg, model)
    critic = run_metrics.fit_other_family(model, x_train, fit, z.shape[1], s.shape[2], seed)
    reading = instrument.read_other(critic, z, s, seed=seed)
    return {**reading, "seconds": time.perf_counter() - t0}


def summarise(fits: dict[str, dict]) -> dict[str, float]:
    """Mean and sd of the fresh fits' readings, and the mean half-width of their brackets."""
    nats = np.array([f["nats"] for k, f in fits.items() if k != "monitor"])
    half = np.array([(f["high"] - f["low"]) / 2 for k, f in fits.items() if k != "monitor"])
    sd = float(nats.std(ddof=1)) if len(nats) > 1 else float("nan")
    return {
        "fits": len(nats),
        "mean": float(nats.mean()),
        "sd": sd,
        "min": float(nats.min()),
        "max": float(nats.max()),
        "bracket_half_width": float(half.mean()),
        "sd_over_half_width": sd / float(half.mean()) if half.mean() > 0 else float("nan"),
    }


def render(record: dict) -> str:
    fits, summary = record["fits"], record["summary"]
    lines = [
        f"# The other family's reading, fit to fit, on one frozen encoder: `{record['run']}`",
        "",
        "Evaluation's other-family fit repeated with its own seed each time (posterior samples"
        " of the pool and the critic), read on the same test rows. The bracket is one fit's "
        "bootstrap over the rows, as the tables show it per seed.",
        "",
        "| fit | I(z;s) read [nats] | bootstrap over rows | seconds |",
        "|---|---|---|---|",
    ]
    for key in sorted(fits, key=lambda k: (k == "monitor", k.zfill(6))):
        f = fits[key]
        name = "the run's last monitor" if key == "monitor" else f"seed {key}"
        lines.append(
            f"| {name} | {f['nats']:.3f} | [{f['low']:.3f}, {f['high']:.3f}] | "
            f"{f.get('seconds', float('nan')):.0f} |"
        )
    lines += [
        "",
        f"Across {summary['fits']} fresh fits: mean {summary['mean']:.3f}, sd {summary['sd']:.3f}"
        f" nats (range {summary['min']:.3f} to {summary['max']:.3f}); one fit's bracket is"
        f" +-{summary['bracket_half_width']:.3f} on average, so the sd across fits is"
        f" {summary['sd_over_half_width']:.2f}x that half-width.",
        "",
        f"Command: `{record['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a finished run folder with checkpoints/best.pt")
    ap.add_argument("--fits", type=int, default=6, help="fresh fits, seeds 0 .. fits - 1")
    ap.add_argument("--only", default=None, help="comma-separated fit seeds to run and merge")
    ap.add_argument("--out", type=Path, default=Path("results/qualification/other_fit_noise"))
    args = ap.parse_args(argv)
    if args.fits < 2:
        ap.error(f"--fits must be >= 2 (an sd needs two fits), got {args.fits}")
    seeds = list(range(args.fits))
    if args.only is not None:
        try:
            seeds = [int(k) for k in args.only.split(",") if k.strip()]
        except ValueError:
            ap.error(f"--only takes comma-separated integers, got {args.only!r}")
    cfg, bundle, model, saved = load_run(args.run_dir)
    z, s, x_train = reading_rows(model, cfg, bundle)
    out = args.out / args.run_dir.name
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/other_fit_noise.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    new = {str(k): one_fit(model, cfg, x_train, z, s, k) for k in seeds}
    fit = run_metrics.other_fit_settings(cfg, model)
    critic = run_metrics.saved_other_critic(saved, fit, len(x_train), z.shape[1], s.shape[2])
    if critic is not None:
        new["monitor"] = instrument.read_other(critic, z, s, seed=cfg.train.seed)
    path = out / "fits.json"
    # read after the fits: another process (`--only`) may have merged its rows meanwhile
    record = json.loads(path.read_text()) if path.exists() else {"fits": {}}
    record["fits"].update(new)
    record.update(run=str(args.run_dir), command=command, _meta=provenance(cfg))
    record["summary"] = summarise(record["fits"])
    write_json(path, record)
    (out / "README.md").write_text(render(record))
    print(render(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
