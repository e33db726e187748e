"""fp32 against bf16 autocast (``train.precision``), side by side in one process.

Usage::

    python benchmarks/precision.py [--steps 8] [--reps 3] [--threads 1]

For each quick model (speech DSAE, PixelCNN-VAE) and objective (`mi`, `cmi`), the body of one
``fit`` step (forward and loss under `paperlib.runtime.autocast`, backward, clip, Adam, the
objective's critic updates) is timed in blocks of `--steps` steps, the two precisions
alternating block by block (`--reps` blocks each, after one untimed block of each), so that a
noisy machine slows both alike. Printed: median ms/step of each precision and the speed-up
fp32 / bf16, with whether this CPU has AMX (``amx_bf16`` in /proc/cpuinfo): bf16 autocast is
expected to pay only there (or on a GPU). Merged into ``results/benchmarks.json`` under
``precision``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from paperlib import config, runtime
from paperlib.data import load_data
from paperlib.models import build_model
from paperlib.studies.experiment import run_config
from paperlib.training.regularizers import build_objective
from paperlib.training.train import BatchStream

ROOT = Path(__file__).resolve().parent.parent


def step_timer(experiment: str, objective_name: str):
    """A function ``(precision, steps) -> seconds`` that runs `steps` training steps of the quick
    preset at that precision, continuing from where the last call stopped."""
    cfg = run_config(config.load("quick", experiment), objective_name, 0, alpha=1.0, beta=1.0)
    bundle = load_data(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, bundle.info)
    objective = build_objective(cfg.objective, model, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    stream = BatchStream(bundle.train, cfg.data.batch_size, 0)
    cpu = torch.device("cpu")
    done = 0

    def run(precision: str, steps: int) -> float:
        nonlocal done
        t0 = time.perf_counter()
        for _ in range(steps):
            x = stream.batch(done)["x"]
            with runtime.autocast(cpu, precision):
                out = model(x)
                loss, _ = objective.model_loss(out, done)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            with runtime.autocast(cpu, precision):
                objective.critic_step(out)
            done += 1
        return time.perf_counter() - t0

    return run


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next(
        (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "unknown"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8, help="steps per timed block")
    p.add_argument("--reps", type=int, default=3, help="timed blocks per precision")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--experiments", nargs="+", default=["speech", "images"])
    p.add_argument("--objectives", nargs="+", default=["mi", "cmi"])
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    amx = runtime.has_amx()
    print(f"AMX (amx_bf16): {'yes' if amx else 'no'}; {args.threads} thread(s)")
    print("| workload | fp32 ms/step | bf16 ms/step | speed-up fp32/bf16 |")
    print("|---|---|---|---|")
    rows = []
    for experiment in args.experiments:
        for name in args.objectives:
            run = step_timer(experiment, name)
            run("fp32", 2)  # untimed: oneDNN builds its kernels on first use
            try:
                run("bf16", 2)
            except RuntimeError as e:  # no bf16 kernel for a layer here (the DSAE's LSTM)
                rows.append({"experiment": experiment, "objective": name, "error": str(e)})
                print(f"| {experiment} quick, {name} | - | not run: {str(e)[:70]}... | - |")
                continue
            ms: dict[str, list[float]] = {"fp32": [], "bf16": []}
            for rep in range(args.reps):
                order = ("fp32", "bf16") if rep % 2 == 0 else ("bf16", "fp32")
                for precision in order:
                    ms[precision].append(1000 * run(precision, args.steps) / args.steps)
            med = {k: statistics.median(v) for k, v in ms.items()}
            row = {"experiment": experiment, "objective": name, "ms_per_step": ms}
            row.update(speedup=med["fp32"] / med["bf16"], median=med)
            rows.append(row)
            print(
                f"| {experiment} quick, {name} | {med['fp32']:.0f} | {med['bf16']:.0f} | "
                f"{row['speedup']:.2f} |",
                flush=True,
            )
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["precision"] = {
        "amx": amx,
        "threads": args.threads,
        "steps_per_block": args.steps,
        "reps": args.reps,
        "rows": rows,
        "cpu": cpu_name(),
    }
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out} (precision)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
