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
``paperlib.regularizers`` ``elbo`` objective; theirs: ``loss_ISD`` + ``loss_KLD`` as in
``dvae/learning_algo.py``), backward and an Adam step (lr 2e-3). Gradient clipping, which our
``fit`` adds, is left out of the ratio and timed alone in the breakdown. Inputs are random
frames (log-mels for ours, positive power spectra for theirs' Itakura-Saito loss): the cost of
a step does not depend on their values.

Each repetition starts one subprocess per model, the order alternating between repetitions,
so that a burst of load from other processes hits both alike. A subprocess warms up, times
blocks of steps and reports the median s/step. Printed: ms/step, utterances/s and the ratio
ours / theirs in utterances/s (median, min-max of the per-repetition ratios).

The breakdown (the first repetition's subprocesses, after their timing): each module of a
model is re-run alone, forward + backward, on the inputs it received inside a step (captured
with forward hooks; inputs require grad exactly where they did in the step), median of
``--breakdown-runs`` runs; Adam's step and gradient clipping alone likewise. "rest" is the
step minus those: the loss, reparameterisation, concatenations and autograd's bookkeeping.

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
        from paperlib.experiment import run_config
        from paperlib.models import build_model
        from paperlib.regularizers import build_objective

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


def _breakdown(model, opt, loss_of, grad_clip, runs: int) -> dict:
    """ms of each module alone (forward + backward on its in-step inputs), Adam, clipping."""
    import torch
    from torch import nn

    captured: dict[str, list] = {}

    def detach(v):
        if isinstance(v, torch.Tensor):
            return v.detach().clone().requires_grad_(v.requires_grad)
        if isinstance(v, (tuple, list)):
            return type(v)(detach(u) for u in v)
        return v

    names = {n for _, ours, theirs in COMPONENTS for n in ours + theirs}
    modules = {n: m for n, m in model.named_children() if n in names}

    def keep(name):
        def hook(module, args, out) -> None:  # returns None: the output stays as it is
            captured.setdefault(name, detach(args))

        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in modules.items()]
    loss_of(0).backward()
    for h in hooks:
        h.remove()

    def flat(out):
        if isinstance(out, torch.Tensor):
            return [out]
        return [t for u in out for t in flat(u)] if isinstance(out, (tuple, list)) else []

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    ms = {}
    for n, args in captured.items():

        def fwd_bwd(m=modules[n], args=args):
            sum(t.float().sum() for t in flat(m(*args)) if t.requires_grad).backward()

        ms[n] = median_ms(fwd_bwd)
    model.zero_grad(set_to_none=True)
    loss_of(1).backward()
    ms["adam step"] = median_ms(opt.step)
    if grad_clip:
        ms["gradient clipping (ours: fit)"] = median_ms(
            lambda: nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        )
    return ms


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
        result["breakdown_ms"] = _breakdown(model, opt, loss_of, grad_clip, breakdown)
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


def _breakdown_rows(first: dict[str, dict], ms: dict[str, float]) -> list[dict]:
    rows = []
    for label, ours, theirs in COMPONENTS:
        row = {"component": label}
        for side, names in (("ours_full", ours), ("ours_factorized", ours), ("theirs", theirs)):
            got = [
                first[side]["breakdown_ms"][n] for n in names if n in first[side]["breakdown_ms"]
            ]
            row[side] = sum(got) if got else None
        rows.append(row)
    for label in ("adam step", "gradient clipping (ours: fit)"):
        rows.append({"component": label, **{s: first[s]["breakdown_ms"].get(label) for s in first}})
    rest = {"component": "rest: loss, sampling, concatenation, autograd bookkeeping"}
    for side in first:
        parts = sum(
            r[side] for r in rows if r.get(side) is not None and "clipping" not in r["component"]
        )
        rest[side] = ms[side] - parts
    rows.append(rest)
    rows.append({"component": "step (forward, loss, backward, Adam)", **ms})
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
    p.add_argument("--breakdown-runs", type=int, default=15, help="runs per breakdown entry")
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
    ms = {r["model"]: r["ms_per_step"] for r in rows}
    breakdown = _breakdown_rows({m: runs[m][0] for m in MODELS}, ms)

    print(f"\nDSAE training step, ours against DVAE's, T {args.frames}, {args.mels} mels, batch "
          f"{B}, hidden {args.hidden}, latents {args.latent}, 1 thread, {args.reps} reps")  # fmt: skip
    print(
        f"{'model':16s} {'params':>8s} {'ms/step':>8s} {'utt/s':>7s} {'ours/theirs (min-max)':>22s}"
    )
    for r in rows:
        print(f"{r['model']:16s} {r['params']:8d} {r['ms_per_step']:8.1f} "
              f"{r['utterances_per_s']:7.0f} {r['ratio_to_theirs']:9.2f} "
              f"({r['ratio_min']:.2f}-{r['ratio_max']:.2f})")  # fmt: skip
    print("\nbreakdown, ms (each module alone, forward + backward; first repetition)")
    print(f"{'component':58s} {'ours_full':>9s} {'theirs':>8s} {'ours_fact':>9s}")

    def cell(v):
        return f"{v:9.2f}" if v is not None else f"{'-':>9s}"

    for r in breakdown:
        print(f"{r['component']:58s} {cell(r['ours_full'])} {cell(r['theirs'])[1:]} "
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
