"""Training throughput of this checkout against an earlier commit, side by side in one run.

Usage::

    python benchmarks/speed_vs_base.py                       # base = BASE below, 1 thread
    python benchmarks/speed_vs_base.py --base HEAD~3 --threads 2 --reps 7

The base commit's ``paperlib/`` is exported with ``git archive`` into a temporary folder. Each
repetition then starts one subprocess per (tree, workload) with ``PYTHONPATH`` pointing at that
tree, alternating which tree goes first, so a burst of load from other processes hits both
alike. A subprocess builds the quick-profile model and every objective's trainer, warms up, and
times blocks of training steps (the body of ``paperlib.training.train.fit``: forward, model loss,
backward, gradient clip, Adam, the objective's critic steps) with the objectives interleaved.

Printed: ms/step and items/s of base and new, and the speed-up in items/s, new / base, as the
median (min - max) of the per-repetition ratios. By default each tree runs its own quick
presets (what a user gets); ``--same-config`` makes the new tree compute what the base computed
(`BASE_COMPUTATION`), so the ratio is the code's speed alone. For the new tree also the achieved FLOP/s of a step
(``torch.utils.flop_counter``: matrix products and convolutions, forward and backward;
fused LSTM/GRU kernels, which it does not count, by their matrix products, backward = 2x forward) as a
fraction of (a) a large fp32 matrix product measured in the same process with the same threads
and (b) the nominal AVX-512 peak, cores x GHz x 64 FLOP/cycle (2 FMA units x 16 fp32 lanes x 2),
with the clock read from /proc/cpuinfo (an assumption: turbo clocks differ).

The result is merged into ``results/benchmarks.json`` under ``speed_vs_base`` (or
``speed_vs_base_same_config``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the last commit before the speed issue's changes (the code the issue measured)
BASE = "6a8153a"
#: what the quick presets computed before the experiments issue changed them (batch 32 for
#: speech, the per-step critic with 3 updates, z broadcast into the image head): with
#: ``--same-config`` the new tree runs these too, so the ratio is the code's speed alone
BASE_COMPUTATION = {
    "speech": {"data__batch_size": 32},
    "common": {
        "objective__critic_pairs": "step",
        "objective__n_critic": 3,
        "objective__warmup_steps": 0,
        "model__z_to_head": "broadcast",
    },
}
#: (label, experiment, overrides of the quick preset)
WORKLOADS = {
    "dsae": ("speech", {}),
    "pixelcnn_vae@14": ("images", {"data__image_size": 14}),
    "pixelcnn_vae@28": ("images", {"data__image_size": 28}),
}
OBJECTIVES = ("elbo", "mi", "cmi")


# ----------------------------------------------------------------------------------------------
# the child: runs inside either tree, using only API that both trees share


def _known(overrides: dict) -> dict:
    """The overrides whose keys this tree's config has (the base tree lacks newer keys)."""
    import dataclasses

    from paperlib import config

    fields = {
        block: {f.name for f in dataclasses.fields(getattr(config, cls))}
        for block, cls in (("data", "DataConfig"), ("model", "ModelConfig"),
                           ("objective", "ObjectiveConfig"))
    }  # fmt: skip
    return {k: v for k, v in overrides.items() if k.split("__")[1] in fields[k.split("__")[0]]}


def _child(
    workload: str, steps: int, warmup: int, blocks: int, threads: int, flops: bool, same: bool
):
    import torch
    from torch import nn

    from paperlib import config
    from paperlib.data import load_data, make_loaders
    from paperlib.models import build_model
    from paperlib.studies.experiment import run_config
    from paperlib.training.regularizers import build_objective
    from paperlib.training.train import BatchStream

    torch.set_num_threads(threads)
    experiment, overrides = WORKLOADS[workload]
    if same:
        overrides = {
            **overrides,
            **_known(BASE_COMPUTATION["common"]),
            **BASE_COMPUTATION.get(experiment, {}),
        }
    base = config.load("quick", experiment, train__progress=False, **overrides)
    bundle = None
    trainers = {}
    for o in OBJECTIVES:
        cfg = run_config(
            base, o, 0, alpha=2.0 if o != "elbo" else 0.0, beta=2.0 if o == "cmi" else 0.0
        )
        bundle = bundle or load_data(cfg.data)
        loaders = make_loaders(cfg.data, bundle, seed=0)
        torch.manual_seed(0)
        model = build_model(cfg.model, bundle.info)
        objective = build_objective(cfg.objective, model)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        stream = BatchStream(loaders["train"].dataset, loaders["train"].batch_size, 0)
        trainers[o] = (cfg, model, objective, opt, stream, [0])

    def step(o: str) -> None:
        cfg, model, objective, opt, stream, n = trainers[o]
        x = stream.batch(n[0])["x"]
        out = model(x)
        loss, _ = objective.model_loss(out, n[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        objective.critic_step(out)
        n[0] += 1

    for o in OBJECTIVES:
        for _ in range(warmup):
            step(o)
    times: dict[str, list[float]] = {o: [] for o in OBJECTIVES}
    for b in range(blocks):
        for o in OBJECTIVES if b % 2 == 0 else OBJECTIVES[::-1]:
            t0 = time.perf_counter()
            for _ in range(steps):
                step(o)
            times[o].append((time.perf_counter() - t0) / steps)
    result = {
        "batch": trainers["elbo"][4].batch_size,
        "s_per_step": {o: statistics.median(v) for o, v in times.items()},
    }
    if flops:
        from torch.utils.flop_counter import FlopCounterMode

        counted = {}
        for o in OBJECTIVES:
            rnn = [0]
            hooks = [
                m.register_forward_hook(
                    lambda m, i, out, rnn=rnn: rnn.__setitem__(0, rnn[0] + _rnn_flops(m, i[0]))
                )
                for m in trainers[o][1].modules()
                if isinstance(m, nn.RNNBase)
            ]
            with FlopCounterMode(display=False) as counter:
                step(o)
            for h in hooks:
                h.remove()
            # the counter has no formula for fused RNN kernels: forward by hand, backward 2x
            counted[o] = counter.get_total_flops() + 3 * rnn[0]
        n = 2048
        a, w = torch.randn(n, n), torch.randn(n, n)
        a @ w
        gemm = []
        for _ in range(5):
            t0 = time.perf_counter()
            a @ w
            gemm.append(time.perf_counter() - t0)
        result["flops_per_step"] = counted
        result["gemm_flops_per_s"] = 2 * n**3 / min(gemm)
    print("RESULT " + json.dumps(result))


def _rnn_flops(module, x) -> int:
    """Forward FLOPs of a (batch-first) LSTM/GRU on `x`: 2 B T G H (in + H) per layer and
    direction, G = 4 gates (LSTM) or 3 (GRU); elementwise gate math is not counted."""
    B, T = x.shape[0], x.shape[1]
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    dirs = 2 if module.bidirectional else 1
    H, flops, d_in = module.hidden_size, 0, module.input_size
    for _ in range(module.num_layers):
        flops += 2 * B * T * dirs * gates * H * (d_in + H)
        d_in = H * dirs
    return flops


# ----------------------------------------------------------------------------------------------
# the parent


def export_base(rev: str, into: Path) -> str:
    """Write ``paperlib/`` of commit `rev` into `into`; return the full commit hash."""
    full = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if full.returncode != 0:
        raise SystemExit(f"error: --base {rev!r} is not a commit of {ROOT}: {full.stderr.strip()}")
    blob = subprocess.run(
        ["git", "archive", "--format=tar", full.stdout.strip(), "paperlib"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return full.stdout.strip()


def run_child(tree: Path, workload: str, args, flops: bool) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    cmd = [sys.executable, __file__, "--child", workload, "--steps", str(args.steps)]
    cmd += ["--warmup", str(args.warmup), "--blocks", str(args.blocks)]
    cmd += ["--threads", str(args.threads)] + (["--flops"] if flops else [])
    cmd += ["--same-config"] if args.same_config else []
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise SystemExit(f"error: the {workload} timing in {tree} failed:\n{r.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def nominal_peak(threads: int) -> tuple[float, float]:
    """(fp32 FLOP/s, GHz): threads x GHz x 64, the clock from /proc/cpuinfo (or nan)."""
    try:
        mhz = [
            float(line.split(":")[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
        ghz = max(mhz) / 1000
    except (OSError, ValueError):
        return float("nan"), float("nan")
    return threads * ghz * 1e9 * 64, ghz


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default=BASE, help=f"commit to compare against (default {BASE})")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5, help="alternating repetitions (processes)")
    p.add_argument("--steps", type=int, default=3, help="steps per timed block")
    p.add_argument("--blocks", type=int, default=3, help="timed blocks per objective")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks.json"))
    p.add_argument(
        "--same-config",
        action="store_true",
        help="run what the base computed (BASE_COMPUTATION) in both trees: the code's speed alone",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(
            args.child, args.steps, args.warmup, args.blocks, args.threads, args.flops,
            args.same_config,
        )  # fmt: skip
        return 0
    workloads = args.workloads.split(",")
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        p.error(f"--workloads: unknown {sorted(unknown)}; accepted: {list(WORKLOADS)}")
    for name, value in (("threads", args.threads), ("reps", args.reps), ("steps", args.steps)):
        if value < 1:
            p.error(f"--{name} must be >= 1, got {value}")

    with tempfile.TemporaryDirectory(prefix="paperlib-base-") as tmp:
        base_commit = export_base(args.base, Path(tmp))
        trees = {"base": Path(tmp), "new": ROOT}
        runs: dict[str, dict[str, list[dict]]] = {w: {"base": [], "new": []} for w in workloads}
        t0 = time.perf_counter()
        for rep in range(args.reps):
            order = ("base", "new") if rep % 2 == 0 else ("new", "base")
            for w in workloads:
                for tree in order:
                    flops = tree == "new" and rep == 0
                    runs[w][tree].append(run_child(trees[tree], w, args, flops))
            print(f"repetition {rep + 1}/{args.reps} done ({time.perf_counter() - t0:.0f} s)")

    peak, ghz = nominal_peak(args.threads)
    rows = []
    for w in workloads:
        first_new = runs[w]["new"][0]
        gemm = first_new["gemm_flops_per_s"]
        for o in OBJECTIVES:
            base_t = [r["s_per_step"][o] for r in runs[w]["base"]]
            new_t = [r["s_per_step"][o] for r in runs[w]["new"]]
            batch, base_batch = first_new["batch"], runs[w]["base"][0]["batch"]
            # throughput ratio (items/s new over base): the batch sizes may differ
            ratios = [(batch / n) / (base_batch / b) for b, n in zip(base_t, new_t)]
            new_med = statistics.median(new_t)
            achieved = first_new["flops_per_step"][o] / new_med
            rows.append(
                {
                    "workload": w,
                    "objective": o,
                    "batch": batch,
                    "base_batch": base_batch,
                    "base_ms": 1000 * statistics.median(base_t),
                    "new_ms": 1000 * new_med,
                    "base_items_per_s": base_batch / statistics.median(base_t),
                    "new_items_per_s": batch / new_med,
                    "speedup": statistics.median(ratios),
                    "speedup_min": min(ratios),
                    "speedup_max": max(ratios),
                    "gflop_per_step": first_new["flops_per_step"][o] / 1e9,
                    "achieved_gflop_s": achieved / 1e9,
                    "fraction_of_gemm": achieved / gemm,
                    "fraction_of_nominal_peak": achieved / peak,
                    "gemm_gflop_s": gemm / 1e9,
                }
            )

    head = (
        f"{'workload':16s} {'obj':5s} {'B old/new':>9s} {'base ms':>8s} {'new ms':>8s} "
        f"{'base it/s':>9s} {'new it/s':>8s} "
        f"{'speed-up (min-max)':>20s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'of GEMM':>8s} "
        f"{'of peak':>8s}"
    )
    what = "the same computation (--same-config)" if args.same_config else "each tree's presets"
    print(f"\nbase {base_commit[:10]} vs this checkout, {what}, {args.threads} thread(s), "
          f"{args.reps} reps")  # fmt: skip
    print(head)
    for r in rows:
        print(
            f"{r['workload']:16s} {r['objective']:5s} {r['base_batch']:>4d}/{r['batch']:<4d} "
            f"{r['base_ms']:8.1f} {r['new_ms']:8.1f} {r['base_items_per_s']:9.0f} "
            f"{r['new_items_per_s']:8.0f} {r['speedup']:8.2f} ({r['speedup_min']:.2f}-"
            f"{r['speedup_max']:.2f})  {r['gflop_per_step']:10.2f} {r['achieved_gflop_s']:8.1f} "
            f"{r['fraction_of_gemm']:8.2f} {r['fraction_of_nominal_peak']:8.2f}"
        )
    print(
        f"GEMM (2048^3 fp32, same threads): {rows[0]['gemm_gflop_s']:.0f} GFLOP/s; nominal peak "
        f"{peak / 1e9:.0f} GFLOP/s ({args.threads} x {ghz:.2f} GHz x 64 FLOP/cycle, assumed)"
    )
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["speed_vs_base" + ("_same_config" if args.same_config else "")] = {
        "base": base_commit,
        "threads": args.threads,
        "reps": args.reps,
        "steps_per_block": args.steps,
        "blocks": args.blocks,
        "load_average_end": os.getloadavg(),
        "nominal_peak_gflop_s": peak / 1e9,
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
