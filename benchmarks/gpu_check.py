"""One command for a CUDA machine: paper-profile step times, peak memory, projected wall time.

Usage::

    python benchmarks/gpu_check.py                  # on a CUDA machine, ~3-5 minutes
    python benchmarks/gpu_check.py --device cpu --steps 2 --tiny   # the script's own test

For each model of the paper profile (DSAE on TIMIT-sized log-mels, PixelCNN-VAE on 28x28 MNIST)
and each objective it

1. checks that a few fp32 training steps on CPU and on CUDA from the same weights and the same
   batches give the same losses (relative tolerance ``--rtol``; TF32 is switched off for it);
2. times ``--steps`` training steps (the body of ``paperlib.training.train.fit``) in three modes: fp32,
   bf16 autocast, and bf16 autocast + ``torch.compile`` (compile time reported apart);
3. prints ms/step, items/s and the peak GPU memory, and projects the paper profile's wall time
   from the fastest mode: runs x steps x ms/step, with the runs listed by the paper profile's
   notebooks (``paperlib.suite.plan`` when present, else the count written below).

Real datasets are not needed: batches are random tensors of the paper shapes (binarised pixels,
standardised log-mels), which is all a step's cost depends on. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = ("elbo", "mi", "cmi")
#: paper profile runs per experiment when paperlib.suite.plan is absent: the validation sweep
#: (elbo + 4 mi + 20 cmi weight settings) x 3 seeds, then elbo / mi / cmi x 3 seeds
FALLBACK_RUNS = (1 + 4 + 20) * 3 + 3 * 3


def shapes(experiment: str, tiny: bool) -> dict:
    """data_info for building the model without its dataset."""
    from paperlib import config

    cfg = config.load("paper", experiment)
    if experiment == "speech":
        x_shape = (cfg.data.n_frames, cfg.data.n_mels) if not tiny else (16, 16)
    else:
        x_shape = (1, 28, 28) if not tiny else (1, 8, 8)
    return {"x_shape": x_shape}


def make(experiment: str, objective: str, device: str, tiny: bool, seed: int = 0):
    from paperlib import config
    from paperlib.models import build_model
    from paperlib.studies.experiment import run_config
    from paperlib.studies.selection import weights_for
    from paperlib.training.regularizers import build_objective

    over = {}
    if tiny:
        over = {"model__hidden": 8, "model__z_dim": 4, "model__s_dim": 4, "data__batch_size": 8}
        over |= {"objective__critic_hidden": 8}
        if experiment == "images":
            over |= {"model__n_layers": 2, "model__enc_channels": 8}
    base = config.load("paper", experiment, train__progress=False, **over)
    cfg = run_config(base, objective, seed, **weights_for(experiment, objective))
    torch.manual_seed(seed)
    model = build_model(cfg.model, shapes(experiment, tiny)).to(device)
    obj = build_objective(cfg.objective, model, seed=seed)
    obj.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    return cfg, model, obj, opt


def batches(experiment: str, cfg, n: int, tiny: bool, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (cfg.data.batch_size, *shapes(experiment, tiny)["x_shape"])
    if experiment == "images":
        return [(torch.rand(shape, generator=g) > 0.7).float() for _ in range(n)]
    return [torch.randn(shape, generator=g) for _ in range(n)]


def step_fn(cfg, model, obj, opt, amp: bool, compiled: bool):
    fwd = torch.compile(model) if compiled else model
    device = next(model.parameters()).device

    def step(x: torch.Tensor, i: int) -> float:
        x = x.to(device, non_blocking=True)
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with ctx:
            out = fwd(x)
            loss, _ = obj.model_loss(out, i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        with ctx:
            obj.critic_step(out)
        return float(loss.detach())

    return step


def agree(experiment: str, objective: str, device: str, tiny: bool, n: int, rtol: float):
    """Losses of `n` fp32 steps on CPU and on `device` from the same start: max relative gap."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from paperlib.models import dsae, pixelcnn_vae

    losses = {}
    for dev in ("cpu", device):
        cfg, model, obj, opt = make(experiment, objective, dev, tiny)
        step = step_fn(cfg, model, obj, opt, amp=False, compiled=False)
        noise = torch.Generator().manual_seed(1)

        def cpu_noise(mean, logvar, generator=None, noise=noise):
            # the same eps on both devices: drawn on the CPU, then moved
            eps = torch.randn(mean.shape, generator=noise).to(mean.device, mean.dtype)
            return mean + (0.5 * logvar).exp() * eps

        saved = dsae.reparameterize, pixelcnn_vae.reparameterize
        dsae.reparameterize = pixelcnn_vae.reparameterize = cpu_noise
        try:
            losses[dev] = [step(x, i) for i, x in enumerate(batches(experiment, cfg, n, tiny))]
        finally:
            dsae.reparameterize, pixelcnn_vae.reparameterize = saved
    gaps = [abs(a - b) / max(abs(a), 1e-8) for a, b in zip(losses["cpu"], losses[device])]
    return {"first_step_rel_gap": gaps[0], "max_rel_gap": max(gaps), "ok": max(gaps) <= rtol}


def time_mode(experiment, objective, device, tiny, steps, amp, compiled) -> dict:
    cfg, model, obj, opt = make(experiment, objective, device, tiny)
    step = step_fn(cfg, model, obj, opt, amp=amp, compiled=compiled)
    xs = batches(experiment, cfg, steps + 3, tiny)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(3):  # warm-up (and compilation)
        step(xs[i], i)
    sync()
    warm = time.perf_counter() - t0
    per = []
    for i in range(3, steps + 3):
        t0 = time.perf_counter()
        step(xs[i], i)
        sync()
        per.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    ms = 1000 * statistics.median(per)
    return {
        "ms_per_step": ms,
        "items_per_s": cfg.data.batch_size / ms * 1000,
        "warmup_s": warm,
        "peak_mib": peak,
        "steps_per_run": cfg.train.steps,
    }


def paper_runs(experiment: str) -> tuple[int, str]:
    """How many training runs the paper profile's notebooks need for `experiment`."""
    try:
        from paperlib.suite import plan  # the cluster launcher's listing, when present
    except ImportError:
        return FALLBACK_RUNS, "assumed: (1 + 4 + 20) x 3 sweep + 3 x 3 final runs"
    try:
        cfgs = [c for c in plan.paper_configs() if c.experiment == experiment]
        return len(cfgs), "paperlib.suite.plan"
    except Exception as err:  # a listing that needs data it cannot find here
        return FALLBACK_RUNS, f"assumed ({type(err).__name__} from paperlib.suite.plan)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    p.add_argument("--agree-steps", type=int, default=3)
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--tiny", action="store_true", help="tiny models (tests the script)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=None, help="also write the table as JSON here")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: no CUDA device here (torch.cuda.is_available() is False); run this on a "
            "GPU machine, or pass --device cpu --tiny to test the script",
            file=sys.stderr,
        )
        return 2
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()} | torch {torch.__version__}")
    modes = [("fp32", False, False), ("bf16", True, False)]
    if not args.no_compile:
        modes.append(("bf16+compile", True, True))
    rows, checks = [], []
    for experiment in ("speech", "images"):
        for o in OBJECTIVES:
            if args.device == "cuda":
                c = agree(experiment, o, "cuda", args.tiny, args.agree_steps, args.rtol)
                checks.append({"experiment": experiment, "objective": o, **c})
            for name, amp, compiled in modes:
                try:
                    r = time_mode(experiment, o, args.device, args.tiny, args.steps, amp, compiled)
                except RuntimeError as err:
                    if not amp:
                        raise
                    # e.g. oneDNN has no bf16 LSTM on a CPU without AVX-512 / AMX
                    why = str(err).splitlines()[0][:120]
                    print(f"{experiment:7s} {o:5s} {name:13s} not supported here: {why}")
                    continue
                rows.append({"experiment": experiment, "objective": o, "mode": name, **r})
                print(
                    f"{experiment:7s} {o:5s} {name:13s} {r['ms_per_step']:8.1f} ms/step "
                    f"{r['items_per_s']:8.0f} items/s  peak {r['peak_mib']:7.0f} MiB  "
                    f"warm-up {r['warmup_s']:5.1f} s",
                    flush=True,
                )
    for c in checks:
        flag = "ok" if c["ok"] else "MISMATCH"
        print(
            f"CPU vs CUDA {c['experiment']:7s} {c['objective']:5s}: first-step relative gap "
            f"{c['first_step_rel_gap']:.2e} ({flag}), over {args.agree_steps} steps "
            f"{c['max_rel_gap']:.2e}"
        )
    total_h = 0.0
    for experiment in ("speech", "images"):
        runs, source = paper_runs(experiment)
        best = min(
            (r for r in rows if r["experiment"] == experiment), key=lambda r: r["ms_per_step"]
        )
        mean_ms = statistics.mean(
            min(
                r["ms_per_step"]
                for r in rows
                if r["experiment"] == experiment and r["objective"] == o
            )
            for o in OBJECTIVES
        )
        hours = runs * best["steps_per_run"] * mean_ms / 1000 / 3600
        total_h += hours
        print(
            f"paper profile, {experiment}: {runs} runs ({source}) x {best['steps_per_run']} "
            f"steps x {mean_ms:.1f} ms (fastest mode, mean over objectives) = {hours:.1f} GPU h"
        )
    print(
        f"paper profile training, both experiments: {total_h:.1f} GPU hours (evaluation not "
        "included)"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"rows": rows, "checks": checks, "gpu_hours": total_h}, indent=2) + "\n"
        )
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
