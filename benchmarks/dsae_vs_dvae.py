"""Our DSAE's training step against the public DVAE implementation's DSAE, side by side.

Usage::

    git clone https://github.com/XiaoyuBIE1994/DVAE /tmp/dvae      # or any checkout of it
    python benchmarks/dsae_vs_dvae.py --dvae /tmp/dvae             # 1 thread, ~4 min

DVAE (Bie et al. 2022, "A benchmark of dynamical variational autoencoders applied to speech
spectrogram modeling") ships a DSAE (Li & Mandt 2018) in ``dvae/model/dsae.py``; it needs only
torch, so that file (and ``dvae/utils/loss.py``, its ELBO terms) is imported from the checkout
given with ``--dvae``. Nothing of it is copied here. Both models are built at equal size: T 64
frames, 40 mels, batch 32, every recurrent state 128 wide, a 16-dim global and 16-dim local
latent (DVAE's v and z), DVAE's own speech config (``config/speech/cfg_dsae.ini``) for the rest
(its decoder MLP 32-64-128-256, tanh).

The posterior families: DVAE's DSAE infers q(z_t | x, v) with a bi-LSTM over [x_t, v] and a
forward RNN, i.e. our ``posterior="full"`` (a bi-LSTM over [x_t, z] and a forward GRU). The
headline ratio times ours in that family (``ours_full``); our presets' ``"factorized"``
posterior (a per-frame MLP) is timed too (``ours_factorized``).

A step is what each codebase's training loop does: forward, ELBO loss (ours:
``paperlib.training.regularizers`` ``elbo`` objective; theirs: ``loss_ISD`` + ``loss_KLD`` as in
``dvae/learning_algo.py``), backward and an Adam step (lr 2e-3). Gradient clipping, which our
``fit`` adds, is left out of the ratio and timed alone in the breakdown. Inputs are random
frames (log-mels for ours, positive power spectra for theirs' Itakura-Saito loss): the cost of
a step does not depend on their values.

Each repetition starts one subprocess per model, the order alternating between repetitions,
so that a burst of load from other processes hits both alike. A subprocess warms up, times
blocks of steps and reports the median s/step. Printed: ms/step, utterances/s and the ratio
ours / theirs in utterances/s (median, min-max of the per-repetition ratios).

The breakdown (the first repetition's subprocesses, after their timing): ``--breakdown-runs``
steps under ``torch.profiler``. Forward hooks open and close a profiler range around each module
(the bi-LSTMs, the forward RNN, the prior LSTM, the decoder, the Gaussian heads); a backward
node is charged to the module that created its forward op (autograd numbers both alike). What
no module holds (the loss, reparameterisation, concatenations, gradient accumulation) and
Adam's step are rows of their own; the profiler adds a few % to the step, shown as its own row.
Gradient clipping, which our ``fit`` adds, is timed alone.

The result is merged into ``results/benchmarks.json`` under ``dsae_vs_dvae``.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the files of the DVAE checkout this script imports (each needs only torch)
DVAE_FILES = {
    "model": "dvae/model/dsae.py",
    "loss": "dvae/utils/loss.py",
    "config": "config/speech/cfg_dsae.ini",
}
MODELS = ("ours_full", "theirs", "ours_factorized")
#: rows of the breakdown: (label, our modules, DVAE's modules), the same role in both models
COMPONENTS = (
    ("q(global | x): bi-LSTM", ("z_rnn",), ("rnn_g_v",)),
    ("q(local | x, global): bi-LSTM", ("s_birnn",), ("rnn_g_xv",)),
    ("q(local): forward GRU (ours) / tanh RNN (theirs)", ("s_rnn",), ("rnn_g_z",)),
    ("q(local | x_t): per-frame MLP (factorized)", ("s_frame",), ()),
    ("p(local_t | local_<t): LSTM", ("prior_rnn",), ("rnn_prior",)),
    ("p(x_t | global, local_t): decoder MLP", ("decoder",), ("mlp_vz_x", "gen_out")),
    (
        "Gaussian heads (linear)",
        ("z_head", "s_head", "prior_head"),
        ("inf_v_mean", "inf_v_logvar", "inf_z_mean", "inf_z_logvar", "prior_mean", "prior_logvar"),
    ),  # fmt: skip
)


def _sizes(args) -> dict:
    return {"T": args.frames, "n_mels": args.mels, "B": args.batch, "H": args.hidden,
            "z": args.latent, "s": args.latent}  # fmt: skip


def _import_file(name: str, path: Path):
    """Import one .py file as module `name` (the DVAE package's __init__ pulls in more)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------
# the child: one model, timed in its own process


def _build(which: str, size: dict, dvae: Path):
    """(model, step function, named modules for the breakdown) for one side."""
    import torch

    g = torch.Generator().manual_seed(0)
    if which.startswith("ours"):
        from paperlib import config
        from paperlib.models import build_model
        from paperlib.studies.experiment import run_config
        from paperlib.training.regularizers import build_objective

        posterior = which.split("_")[1]
        base = config.load(
            "quick", "speech", train__progress=False, data__batch_size=size["B"],
            data__n_frames=size["T"], data__n_mels=size["n_mels"], model__hidden=size["H"],
            model__z_dim=size["z"], model__s_dim=size["s"], model__posterior=posterior,
        )  # fmt: skip
        cfg = run_config(base, "elbo", 0)
        torch.manual_seed(0)
        model = build_model(cfg.model, {"x_shape": (size["T"], size["n_mels"])})
        objective = build_objective(cfg.objective, model)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        batches = [torch.randn(size["B"], size["T"], size["n_mels"], generator=g) for _ in range(4)]

        def loss_of(i: int):
            out = model(batches[i % len(batches)])  # (B, T, n_mels) log-mels
            return objective.model_loss(out, i)[0]  # -ELBO, as fit minimises it

        return model, opt, loss_of, cfg.train.grad_clip

    dsae = _import_file("dvae_dsae", dvae / DVAE_FILES["model"])
    loss = _import_file("dvae_loss", dvae / DVAE_FILES["loss"])
    ini = configparser.ConfigParser()
    ini.read(dvae / DVAE_FILES["config"])
    net = ini["Network"]
    net["x_dim"], net["z_dim"], net["v_dim"] = str(size["n_mels"]), str(size["s"]), str(size["z"])
    for key in ("dim_RNN_gv", "dim_RNN_gxv", "dim_RNN_gz", "dim_RNN_prior"):
        net[key] = str(size["H"])
    torch.manual_seed(0)
    model = dsae.build_DSAE(ini, device="cpu")
    opt = torch.optim.Adam(model.parameters(), lr=ini.getfloat("Training", "lr"))
    # (T, B, F) positive power spectra: DVAE's layout, and its Itakura-Saito loss needs x > 0
    batches = [
        torch.randn(size["T"], size["B"], size["n_mels"], generator=g).exp() for _ in range(4)
    ]
    beta = ini.getfloat("Training", "beta")

    def loss_of(i: int):
        # dvae/learning_algo.py, the training loop's loss for DSAE (kl_warm = 1)
        x = batches[i % len(batches)]
        y = torch.exp(model(x))  # the model outputs log-variances
        T, B, _ = model.z_mean.shape
        recon = loss.loss_ISD(x, y) / (T * B)
        kl = loss.loss_KLD(model.z_mean, model.z_logvar, model.z_mean_p, model.z_logvar_p)
        kl = kl + loss.loss_KLD(model.v_mean, model.v_logvar, model.v_mean_p, model.v_logvar_p)
        return recon + beta * kl / (T * B)

    return model, opt, loss_of, None


def _breakdown(model, opt, step, grad_clip, runs: int) -> dict:
    """Forward and backward ms of each module inside `runs` profiled steps, plus the rest.

    Each module's forward is a ``torch.profiler`` range opened and closed by forward hooks; a
    backward node belongs to the module whose range held the forward op of the same sequence
    number (autograd links the two by it). Also timed: Adam's step and, alone, the gradient
    clipping that our ``fit`` adds (not part of the timed step).
    """
    from torch import nn
    from torch.profiler import ProfilerActivity, profile, record_function

    names = {n for _, ours, theirs in COMPONENTS for n in ours + theirs}
    ranges: dict[str, record_function] = {}

    def enter(module, args, name) -> None:
        ranges[name] = record_function(f"component::{name}")
        ranges[name].__enter__()

    def leave(module, args, out, name) -> None:  # returns None: the output stays as it is
        ranges.pop(name).__exit__(None, None, None)

    hooks = []
    for n, m in model.named_children():
        if n in names:
            hooks.append(m.register_forward_pre_hook(lambda m, a, n=n: enter(m, a, n)))
            hooks.append(m.register_forward_hook(lambda m, a, o, n=n: leave(m, a, o, n)))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(runs):
            with record_function("step"):
                step(i)
    for h in hooks:
        h.remove()

    events = prof.events()
    spans = sorted(
        (e.time_range.start, e.time_range.end, e.name.split("::", 1)[1])
        for e in events
        if e.name.startswith("component::")
    )
    owner: dict[int, str] = {}  # sequence number of a forward op -> its module
    for e in events:
        if e.sequence_nr < 0 or e.name.startswith(("autograd::", "component::")):
            continue
        for start, end, name in spans:
            if start <= e.time_range.start and e.time_range.end <= end:
                owner[e.sequence_nr] = name
                break
    ms: dict[str, dict[str, float]] = {}

    def add(name: str, part: str, us: float) -> None:
        ms.setdefault(name, {"forward": 0.0, "backward": 0.0})[part] += us / runs / 1000

    for start, end, name in spans:
        add(name, "forward", end - start)
    total = {"step": 0.0, "backward": 0.0, "adam": 0.0}
    for e in events:
        if e.name == "step":
            total["step"] += e.cpu_time_total
        elif e.name.startswith("Optimizer.step"):
            total["adam"] += e.cpu_time_total
        elif e.name.startswith("autograd::engine::evaluate_function"):
            total["backward"] += e.cpu_time_total
            if e.sequence_nr in owner:
                add(owner[e.sequence_nr], "backward", e.cpu_time_total)
    step_ms, bwd_ms, adam_ms = (total[k] / runs / 1000 for k in ("step", "backward", "adam"))
    fwd_modules = sum(v["forward"] for v in ms.values())
    bwd_modules = sum(v["backward"] for v in ms.values())
    out = {"modules": ms, "adam step": adam_ms, "step under the profiler": step_ms}
    out["forward outside the modules (loss, sampling, concatenation)"] = (
        step_ms - bwd_ms - adam_ms - fwd_modules
    )
    out["backward outside the modules (the same; gradient accumulation)"] = bwd_ms - bwd_modules
    if grad_clip:
        times = []
        for _ in range(max(runs, 3)):
            t0 = time.perf_counter()
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            times.append(time.perf_counter() - t0)
        out["gradient clipping (ours: fit)"] = 1000 * statistics.median(times)
    return out


def _child(which: str, size: dict, dvae: Path, steps: int, warmup: int, blocks: int,
           breakdown: int) -> None:  # fmt: skip
    import torch

    torch.set_num_threads(1)
    model, opt, loss_of, grad_clip = _build(which, size, dvae)

    def step(i: int) -> None:
        loss = loss_of(i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(warmup):
        step(i)
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        times.append((time.perf_counter() - t0) / steps)
    result = {
        "s_per_step": statistics.median(times),
        "params": sum(p.numel() for p in model.parameters()),
    }
    if breakdown:
        result["breakdown_ms"] = _breakdown(model, opt, step, grad_clip, breakdown)
    print("RESULT " + json.dumps(result))


# ----------------------------------------------------------------------------------------------
# the parent


def check_dvae(path: str | None) -> Path:
    """The DVAE checkout, or SystemExit naming ``--dvae`` and what is missing."""
    if not path:
        raise SystemExit(
            "error: --dvae PATH is required: a checkout of https://github.com/XiaoyuBIE1994/DVAE "
            "(git clone it, then pass its folder)"
        )
    root = Path(path).expanduser().resolve()
    missing = [f for f in DVAE_FILES.values() if not (root / f).is_file()]
    if missing:
        raise SystemExit(
            f"error: --dvae {path!r} is not a DVAE checkout: it lacks {', '.join(missing)} "
            "(pass a clone of https://github.com/XiaoyuBIE1994/DVAE)"
        )
    return root


def dvae_provenance(root: Path, rev: str | None) -> dict:
    """Which DVAE code ran: its commit (`rev`, else git's where `root` is a clone's top folder)
    and the hash of its model file."""
    top = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if rev is None and len(top) == 2 and Path(top[0]).resolve() == root:
        rev = top[1]
    digest = hashlib.sha256((root / DVAE_FILES["model"]).read_bytes()).hexdigest()
    return {"path": str(root), "commit": rev, "dsae_py_sha256": digest}


def run_child(which: str, args, dvae: Path, breakdown: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    cmd = [sys.executable, __file__, "--child", which, "--dvae", str(dvae)]
    for flag in ("steps", "warmup", "blocks", "frames", "mels", "batch", "hidden", "latent"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    cmd += ["--breakdown-runs", str(args.breakdown_runs if breakdown else 0)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise SystemExit(f"error: the {which} timing failed:\n{r.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _breakdown_rows(first: dict[str, dict]) -> list[dict]:
    """The breakdown's rows: each role's forward + backward ms on every side, then the rest."""
    rows = []
    for label, ours, theirs in COMPONENTS:
        row = {"component": label}
        for side in first:
            got = first[side]["breakdown_ms"]["modules"]
            parts = [got[n] for n in (theirs if side == "theirs" else ours) if n in got]
            row[side] = sum(p["forward"] + p["backward"] for p in parts) if parts else None
            row[f"{side}_forward"] = sum(p["forward"] for p in parts) if parts else None
        rows.append(row)
    for label in (
        "forward outside the modules (loss, sampling, concatenation)",
        "backward outside the modules (the same; gradient accumulation)",
        "adam step",
        "step under the profiler",
        "gradient clipping (ours: fit)",
    ):
        rows.append({"component": label, **{s: first[s]["breakdown_ms"].get(label) for s in first}})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dvae", help="a checkout of github.com/XiaoyuBIE1994/DVAE (required)")
    p.add_argument(
        "--dvae-rev", help="DVAE's commit, recorded where --dvae is not a git clone (an export)"
    )
    p.add_argument("--reps", type=int, default=6, help="alternating repetitions (processes)")
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--blocks", type=int, default=3, help="timed blocks per process")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--breakdown-runs", type=int, default=5, help="profiled steps (breakdown)")
    p.add_argument("--frames", type=int, default=64, help="T")
    p.add_argument("--mels", type=int, default=40)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128, help="every recurrent state's width")
    p.add_argument("--latent", type=int, default=16, help="global and local latent sizes")
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks.json"))
    p.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    dvae = check_dvae(args.dvae)
    for name in ("reps", "steps", "blocks", "frames", "batch", "hidden", "latent"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    size = _sizes(args)
    if args.child:
        _child(args.child, size, dvae, args.steps, args.warmup, args.blocks, args.breakdown_runs)
        return 0

    runs: dict[str, list[dict]] = {m: [] for m in MODELS}
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    for rep in range(args.reps):
        for which in MODELS if rep % 2 == 0 else MODELS[::-1]:
            runs[which].append(run_child(which, args, dvae, breakdown=rep == 0))
        print(f"repetition {rep + 1}/{args.reps} done ({time.perf_counter() - t0:.0f} s)")

    B = args.batch
    theirs = [r["s_per_step"] for r in runs["theirs"]]
    rows = []
    for which in MODELS:
        mine = [r["s_per_step"] for r in runs[which]]
        # utterances/s ours over theirs, per repetition (same batch on both sides)
        ratios = [t / m for m, t in zip(mine, theirs)]
        rows.append({
            "model": which,
            "params": runs[which][0]["params"],
            "ms_per_step": 1000 * statistics.median(mine),
            "utterances_per_s": B / statistics.median(mine),
            "ratio_to_theirs": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        })  # fmt: skip
    breakdown = _breakdown_rows({m: runs[m][0] for m in MODELS})

    print(f"\nDSAE training step, ours against DVAE's, T {args.frames}, {args.mels} mels, batch "
          f"{B}, hidden {args.hidden}, latents {args.latent}, 1 thread, {args.reps} reps")  # fmt: skip
    print(
        f"{'model':16s} {'params':>8s} {'ms/step':>8s} {'utt/s':>7s} {'ours/theirs (min-max)':>22s}"
    )
    for r in rows:
        print(f"{r['model']:16s} {r['params']:8d} {r['ms_per_step']:8.1f} "
              f"{r['utterances_per_s']:7.0f} {r['ratio_to_theirs']:9.2f} "
              f"({r['ratio_min']:.2f}-{r['ratio_max']:.2f})")  # fmt: skip
    print("\nbreakdown, ms per step, forward + backward inside the step (torch.profiler, rep 1)")
    print(f"{'component':64s} {'ours_full':>9s} {'theirs':>8s} {'ours_fact':>9s}")

    def cell(v):
        return f"{v:9.2f}" if v is not None else f"{'-':>9s}"

    for r in breakdown:
        print(f"{r['component']:64s} {cell(r['ours_full'])} {cell(r['theirs'])[1:]} "
              f"{cell(r['ours_factorized'])}")  # fmt: skip

    from paperlib.records import git_commit

    out = Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {}
    data["dsae_vs_dvae"] = {
        "command": "python benchmarks/dsae_vs_dvae.py " + " ".join(argv or sys.argv[1:]),
        "git_commit": git_commit(),
        "dvae": dvae_provenance(dvae, args.dvae_rev),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": __import__("torch").__version__,
        "threads": 1,
        "sizes": size,
        "reps": args.reps,
        "steps_per_block": args.steps,
        "blocks": args.blocks,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "rows": rows,
        "breakdown_ms": breakdown,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
