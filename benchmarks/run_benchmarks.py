"""All benchmarks in one run: prints a table and writes results/benchmarks.json.

Usage::

    python benchmarks/run_benchmarks.py [--quick] [--out results/benchmarks.json] [--threads 1]

Sections (methods in benchmarks/README.md):

- ``throughput``: training steps of fit() (forward, model loss, backward, clip, Adam step, the
  objective's critic step) for each model (dsae on quick speech, pixelcnn_vae on quick images)
  and objective (elbo, mi, cmi), at the quick-profile sizes of ``config.load("quick", ...)``,
  in sequences (or images) per second; CPU, and CUDA when available. Objectives are interleaved
  in blocks of steps, so a burst of load from other processes hits all of them alike.
- ``overhead``: per model, median over repetitions of t(cmi) / t(elbo) (and mi / elbo) from
  the paired blocks of the same repetition: a ratio within one run, not absolute times.
- ``memory``: peak resident memory added by the first training steps of a freshly built
  (model, objective): on Linux the peak (VmHWM) is reset through /proc/self/clear_refs after
  freeing glibc's free pages, and peak minus the resident size before the first step is
  reported; elsewhere one subprocess per configuration and ``ru_maxrss`` after minus before.
- ``sampling``: cached vs naive autoregressive sampling (benchmarks/sampling.py); the naive
  sampler runs on the first rows and is extrapolated (every naive step costs one full pass).
- ``corpus``: synthetic speech corpus generation in a fresh temporary cache, then cached load
  (benchmarks/data_generation.py).
- ``notebooks``: each notebook's wall time from its last run (results/<nb>/run.json).
- ``profile``: torch.profiler over training steps of each model under cmi: top ops by self CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

MODELS = {"dsae": "speech", "pixelcnn_vae": "images"}
OBJECTIVES = ("elbo", "mi", "cmi")


# ----------------------------------------------------------------------------------------------
# one training step, exactly as paperlib.training.train.fit does it


class Trainer:
    """A model, its objective and optimiser, and batches from fit's `BatchStream`.

    `step` is the body of fit's loop (without logging, checkpoints and the finite checks,
    which cost a few float() calls that fit pays anyway through ``model_loss``).
    """

    def __init__(self, experiment: str, objective: str, device: str = "cpu", bundle=None):
        from paperlib import config
        from paperlib.data import load_data, make_loaders
        from paperlib.models import build_model
        from paperlib.studies.experiment import run_config
        from paperlib.studies.selection import weights_for
        from paperlib.training.regularizers import build_objective
        from paperlib.training.train import BatchStream

        base = config.load("quick", experiment, train__progress=False)
        self.cfg = run_config(base, objective, 0, **weights_for(experiment, objective))
        self.bundle = bundle if bundle is not None else load_data(self.cfg.data)
        loaders = make_loaders(self.cfg.data, self.bundle, seed=0)
        torch.manual_seed(0)
        self.device = torch.device(device)
        self.model = build_model(self.cfg.model, self.bundle.info).to(self.device)
        self.objective = build_objective(self.cfg.objective, self.model)
        self.objective.to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.train.lr)
        self.stream = BatchStream(loaders["train"].dataset, loaders["train"].batch_size, 0)
        self.batch_size = self.stream.batch_size
        self.n_step = 0

    def step(self) -> dict[str, float]:
        x = self.stream.batch(self.n_step)["x"].to(self.device)
        self.model.train()
        self.objective.train()
        out = self.model(x)
        loss, terms = self.objective.model_loss(out, self.n_step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.opt.step()
        terms.update(self.objective.critic_step(out))
        self.n_step += 1
        return terms

    def timed(self, n: int) -> float:
        """Seconds for `n` steps (synchronised on CUDA)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def throughput(device: str, reps: int, steps: int, warmup: int) -> tuple[list, dict]:
    """Items/s per (model, objective), objectives interleaved; and the cmi / elbo ratios."""
    rows, overhead = [], {}
    for model, experiment in MODELS.items():
        bundle = None
        trainers = {}
        for o in OBJECTIVES:
            trainers[o] = Trainer(experiment, o, device, bundle)
            bundle = trainers[o].bundle
        for t in trainers.values():
            t.timed(warmup)
        times: dict[str, list[float]] = {o: [] for o in OBJECTIVES}
        for r in range(reps):
            order = OBJECTIVES if r % 2 == 0 else OBJECTIVES[::-1]  # no fixed position
            for o in order:
                times[o].append(trainers[o].timed(steps))
        B = trainers["elbo"].batch_size
        for o in OBJECTIVES:
            med = statistics.median(times[o])
            rows.append(
                {
                    "device": device,
                    "model": model,
                    "objective": o,
                    "batch": B,
                    "x_shape": list(bundle.info["x_shape"]),
                    "n_critic": trainers[o].cfg.objective.n_critic if o != "elbo" else 0,
                    "ms_per_step": 1000 * med / steps,
                    "items_per_s": B * steps / med,
                    "spread": (max(times[o]) - min(times[o])) / med,
                }
            )
        for o in ("mi", "cmi"):
            ratios = [a / b for a, b in zip(times[o], times["elbo"])]
            overhead[f"{device}/{model}/{o}_over_elbo"] = {
                "median": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "reps": reps,
            }
    return rows, overhead


# ----------------------------------------------------------------------------------------------
# peak memory of training steps


def _status_kib(field: str) -> int:
    """A ``VmXXX`` field of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _can_reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap pages back (so reuse does not hide growth)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _peak_of_steps(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(resident MiB before the first step, peak MiB during `steps` steps), in this process.

    Linux: writing 5 to /proc/self/clear_refs resets VmHWM (the peak RSS) to the current RSS.
    """
    _release_free_memory()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    for _ in range(steps):
        trainer.step()
    return before / 1024, _status_kib("VmHWM") / 1024


def _memory_child(model: str, objective: str, steps: int, threads: int) -> None:
    """Fallback without /proc/self/clear_refs: ru_maxrss (a high-water mark) in a fresh process."""
    torch.set_num_threads(threads)
    t = Trainer(MODELS[model], objective)
    _release_free_memory()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for _ in range(steps):
        t.step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_mib": before / 1024, "after_mib": after / 1024}))


def memory(steps: int, threads: int) -> tuple[str, list[dict[str, Any]]]:
    """Peak resident memory added by `steps` training steps of a freshly built trainer."""
    in_process = _can_reset_peak()
    method = (
        "in-process: VmHWM reset via /proc/self/clear_refs, peak minus RSS before the first step"
        if in_process
        else "one subprocess per configuration: ru_maxrss after the steps minus before"
    )
    rows = []
    for model, experiment in MODELS.items():
        bundle = None
        for o in OBJECTIVES:
            if in_process:
                t = Trainer(experiment, o, bundle=bundle)
                bundle = t.bundle
                before, peak = _peak_of_steps(t, steps)
                del t
            else:
                cmd = [sys.executable, __file__, "--_memory", model, o, str(steps), str(threads)]
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
                if r.returncode != 0:
                    rows.append({"model": model, "objective": o, "error": r.stderr[-500:]})
                    continue
                m = json.loads(r.stdout.strip().splitlines()[-1])
                before, peak = m["before_mib"], m["after_mib"]
            rows.append(
                {
                    "model": model,
                    "objective": o,
                    "rss_before_mib": before,
                    "peak_rss_mib": peak,
                    "step_peak_mib": peak - before,
                }
            )
    return method, rows


# ----------------------------------------------------------------------------------------------
# profile of training steps


def profile_steps(steps: int, top: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    out = {}
    for model, experiment in MODELS.items():
        t = Trainer(experiment, "cmi")
        t.timed(3)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t.timed(steps)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        out[model] = {
            "steps": steps,
            "top_ops": [
                {
                    "op": e.key,
                    "calls_per_step": e.count / steps,
                    "self_ms_per_step": e.self_cpu_time_total / 1000 / steps,
                    "self_share": e.self_cpu_time_total / total,
                }
                for e in ranked
            ],
        }
    return out


# ----------------------------------------------------------------------------------------------
# notebooks' last wall times


def notebook_times(results: Path) -> dict[str, Any]:
    from paperlib.suite.params import notebook_names

    out: dict[str, Any] = {}
    for name in notebook_names():
        stamp = results / name / "run.json"
        if not stamp.exists():
            out[name] = {"status": f"missing: {stamp} (notebook not run yet)"}
            continue
        try:
            info = json.loads(stamp.read_text())
            out[name] = {
                "status": "ok",
                "profile": info.get("profile"),
                "wall_seconds": info.get("wall_seconds"),
                "finished": info.get("finished"),
            }
        except (OSError, json.JSONDecodeError) as err:
            out[name] = {"status": f"unreadable {stamp}: {err}"}
    return out


# ----------------------------------------------------------------------------------------------
# table


def _table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([f"\n## {title}", line(cells[0]), sep, *map(line, cells[1:])])


def report(res: dict[str, Any]) -> str:
    parts = []
    m = res["meta"]
    parts.append(
        f"# benchmarks ({m['mode']}): torch {m['torch']}, {m['threads']} thread(s), "
        f"{m['cpu_count']} CPUs, load average at start {m['loadavg_start']}, "
        f"total {m['total_seconds']:.0f} s"
    )
    parts.append(
        _table(
            "training throughput (fit's step incl. critic steps; median of interleaved reps)",
            ["device", "model", "objective", "batch", "n_critic", "ms/step", "items/s", "spread"],
            [
                [
                    r["device"],
                    r["model"],
                    r["objective"],
                    r["batch"],
                    r["n_critic"],
                    f"{r['ms_per_step']:.1f}",
                    f"{r['items_per_s']:.0f}",
                    f"{100 * r['spread']:.0f}%",
                ]
                for r in res["throughput"]
            ],
        )
    )
    parts.append(
        _table(
            "overhead ratio (same run, paired reps)",
            ["device/model/ratio", "median", "min", "max", "reps"],
            [
                [k, f"{v['median']:.2f}", f"{v['min']:.2f}", f"{v['max']:.2f}", v["reps"]]
                for k, v in res["overhead"].items()
            ],
        )
    )
    parts.append(
        _table(
            f"peak memory of 3 training steps ({res['memory_method']})",
            ["model", "objective", "RSS before (MiB)", "peak (MiB)", "added by steps (MiB)"],
            [
                [r["model"], r["objective"], "error", "", r["error"][-60:]]
                if "error" in r
                else [
                    r["model"],
                    r["objective"],
                    f"{r['rss_before_mib']:.0f}",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{r['step_peak_mib']:.1f}",
                ]
                for r in res["memory"]
            ],
        )
    )
    s = res["sampling"]
    how = f"extrapolated from {s['naive_rows']} rows" if s["naive_extrapolated"] else "measured"
    parts.append(
        _table(
            f"sampling, quick image model {tuple(s['x_shape'])}, batch {s['batch']}",
            ["cached (s)", "naive (s)", "naive", "speed-up", "identical rows"],
            [
                [
                    f"{s['cached_s']:.2f}",
                    f"{s['naive_s']:.1f}",
                    how,
                    f"{s['speedup']:.0f}x",
                    s["identical"],
                ]
            ],
        )
    )
    c = res["corpus"]
    parts.append(
        _table(
            "synthetic speech corpus",
            ["profile", "corpus", "cold generation (s)", "cached load (s)", "ratio"],
            [
                [
                    c["profile"],
                    c["corpus"],
                    f"{c['cold_s']:.2f}",
                    f"{c['cached_s']:.3f}",
                    f"{c['cold_s'] / c['cached_s']:.0f}x",
                ]
            ],
        )
    )
    parts.append(
        _table(
            "notebooks, last run (results/<nb>/run.json)",
            ["notebook", "profile", "wall (s)", "finished / status"],
            [
                [n, v.get("profile", ""), v.get("wall_seconds", ""), v.get("finished", "")]
                if v["status"] == "ok"
                else [n, "", "", v["status"]]
                for n, v in res["notebooks"].items()
            ],
        )
    )
    for model, p in res["profile"].items():
        parts.append(
            _table(
                f"profile: {model} under cmi, top ops by self CPU ({p['steps']} steps)",
                ["op", "calls/step", "self ms/step", "share"],
                [
                    [
                        e["op"],
                        f"{e['calls_per_step']:.0f}",
                        f"{e['self_ms_per_step']:.2f}",
                        f"{100 * e['self_share']:.1f}%",
                    ]
                    for e in p["top_ops"]
                ],
            )
        )
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reps, smoke corpus (~1.5 min)")
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks.json"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--results", default=str(ROOT / "results"), help="notebook results")
    parser.add_argument("--_memory", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._memory:
        model, objective, steps, threads = args._memory
        _memory_child(model, objective, int(steps), int(threads))
        return 0

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    q = args.quick
    # reps x steps per (model, objective); naive sampling rows; corpus preset
    reps, steps, warmup = (3, 4, 2) if q else (5, 8, 3)
    res: dict[str, Any] = {
        "meta": {
            "mode": "quick" if q else "default",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": args.threads,
            "cpu_count": os.cpu_count(),
            "loadavg_start": [round(v, 2) for v in os.getloadavg()],
            "cuda": torch.cuda.is_available(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    }
    from paperlib.records import git_commit

    res["meta"]["git_commit"] = git_commit()

    def stage(name: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {name} ...", file=sys.stderr, flush=True)

    stage("throughput (cpu)")
    res["throughput"], res["overhead"] = throughput("cpu", reps, steps, warmup)
    if torch.cuda.is_available():
        stage("throughput (cuda)")
        rows, over = throughput("cuda", reps, 4 * steps, warmup)
        res["throughput"] += rows
        res["overhead"].update(over)
    stage("memory")
    res["memory_method"], res["memory"] = memory(steps=3, threads=args.threads)
    stage("sampling")
    from sampling import time_sampling

    res["sampling"] = time_sampling(batch=16 if q else 64, naive_rows=1 if q else 2)
    stage("corpus")
    from data_generation import time_corpus

    corpus_profile = "smoke" if q else "quick"
    res["corpus"], _ = time_corpus(corpus_profile)
    res["corpus"]["profile"] = corpus_profile
    stage("notebooks")
    res["notebooks"] = notebook_times(Path(args.results))
    stage("profile")
    res["profile"] = profile_steps(steps=3 if q else 6, top=10)
    res["meta"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    res["meta"]["total_seconds"] = time.perf_counter() - t_start

    print(report(res))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
