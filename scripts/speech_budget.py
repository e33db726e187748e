"""How long must the speech DSAE train? Validation metrics against training steps.

The quick profile stops speech training at 500 steps, and every run's best validation ELBO
was still at the last step (issue 13). This study trains one run per objective for longer,
resuming one run folder from budget to budget, and evaluates the best-validation weights at
each budget on the *validation* split (never the test split): the speaker probe on z and its
raw-input reference, self-reconstruction and voice-conversion speaker accuracy, the NLL.

    python scripts/speech_budget.py --steps 500 1000 2000 --objectives mi --seed 200

Writes ``results/speech_budget/`` (budget.json with provenance, budget.png / .pdf). Seeds 200+
are used by nothing else in the project.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from paperlib import config, runtime
from paperlib.data import load_data
from paperlib.records import provenance, write_json
from paperlib.reports import plots
from paperlib.studies import experiment, references
from paperlib.studies.selection import load_selection, weights_for

METRICS = (
    "probe_acc",
    "recon_speaker_acc",
    "vc_speaker_acc",
    "speaker_probe_acc_s",
    "mi_zs_nats",
    "nll_nats",
)


def run(
    steps: list[int],
    objectives: list[str],
    seed: int,
    profile: str,
    out: Path,
    selection_file: Path | None,
    overrides: dict | None = None,
    alpha: float | None = None,
) -> dict:
    base = config.load(profile, "speech", **(overrides or {}))
    bundle = load_data(base.data)
    classifiers = references.fit_classifiers(base, bundle)
    refs = references.floors(base, bundle, classifiers, seeds=[seed], split="val")
    # the weights notebook 03 chose for this profile (checked), or the fallback without one
    selection = load_selection(selection_file, base) if selection_file else None
    rows = []
    for objective in objectives:
        weights = weights_for("speech", objective, alpha=alpha, selection=selection)
        tag = "".join(f"_{k.split('__')[1]}{_fmt(v)}" for k, v in sorted((overrides or {}).items()))
        run_dir = runtime.work_dir() / "runs" / "speech_budget" / f"{objective}_s{seed}{tag}"
        for budget in sorted(steps):
            # patience 0: train the whole budget; the best validation ELBO's weights are kept
            cfg = experiment.run_config(base, objective, seed, **weights).replace(
                train__steps=budget, train__patience=0
            )
            model, _, history = experiment.train_run(cfg, bundle, run_dir=run_dir)
            t0 = time.perf_counter()
            m, _ = experiment.evaluate_run(model, cfg, bundle, classifiers, split="val")
            row = {
                "objective": objective,
                "steps": budget,
                "best_step": history.best_step,
                "train_seconds": history.train_seconds,
                "eval_seconds": time.perf_counter() - t0,
                "best_val_elbo": history.best_val_elbo,
                # the trained rule of the tables: < 1 % gain of the best validation ELBO over
                # the last fifth of the steps
                "val_elbo_gain_last_fifth": history.val_elbo_gain(),
                "trained": history.trained(),
                **{k: m[k] for k in METRICS if k in m},
            }
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
            rows.append(row)
    result = {
        "rows": rows,
        "references": refs,
        "weights": selection,
        "overrides": overrides or {},
        **provenance(base),
    }
    write_json(out / "budget.json", result)
    return result


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def figure(result: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    refs = result["references"]
    ceiling = refs["vc_speaker_acc@ceiling"]
    # (metric, title, [(reference value, label, line style)])
    panels = [
        ("probe_acc", "speaker probe on z (val)", [
            (refs["probe_acc@raw_input"], "raw input", "--"),
            (0.9 * refs["probe_acc@raw_input"], "target: 0.9 x raw input", ":"),
            (refs["probe_acc@random_init"], "random init", "-."),
        ]),
        ("speaker_probe_acc_s", "speaker probe on s (val)", [
            (refs["speaker_probe_acc_s@random_init"], "random init", "-."),
        ]),
        ("recon_speaker_acc", "speaker acc. of reconstructions", [
            (ceiling, "real utterances", "--"),
        ]),
        ("vc_speaker_acc", "VC speaker consistency", [
            (ceiling, "real utterances", "--"), (0.5, "target 0.5", ":"),
        ]),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.2), constrained_layout=True)
    for ax, (key, title, lines) in zip(axes, panels, strict=True):
        for objective in sorted({r["objective"] for r in result["rows"]}):
            pts = [(r["steps"], r[key]) for r in result["rows"] if r["objective"] == objective]
            ax.plot(*zip(*pts, strict=True), marker="o", label=objective)
        for value, label, style in lines:
            ax.axhline(value, color="grey", ls=style, lw=1, label=label)
        ax.set(title=title, xlabel="training steps", ylim=(0, 1))
        ax.legend(fontsize=7)
    changed = ", ".join(
        f"{k.replace('__', '.')} = {_fmt(v)}" for k, v in result.get("overrides", {}).items()
    )
    fig.suptitle(f"speech, quick preset{' with ' + changed if changed else ''}", fontsize=9)
    plots.save_figure(fig, out / "budget")


def compare_figure(results: dict[str, dict], out: Path) -> None:
    """One figure over several budget.json results (``--compare label=folder ...``): a line per
    (label, objective) on the validation metrics that tell a better-trained model."""
    import matplotlib.pyplot as plt

    refs = next(iter(results.values()))["references"]
    panels = [
        ("probe_acc", "speaker probe on z (val)", refs["probe_acc@raw_input"], "raw input"),
        ("speaker_probe_acc_s", "speaker probe on s (val)", None, None),
        ("nll_nats", "NLL [nats / sequence] (val)", None, None),
        ("best_val_elbo", "best validation ELBO [nats]", None, None),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.2), constrained_layout=True)
    for ax, (key, title, ref, ref_label) in zip(axes, panels, strict=True):
        for label, result in results.items():
            for objective in sorted({r["objective"] for r in result["rows"]}):
                pts = [
                    (r["steps"], r[key])
                    for r in result["rows"]
                    if r["objective"] == objective and r.get(key) is not None
                ]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=f"{objective}, {label}")
        if ref is not None:
            ax.axhline(ref, color="grey", ls="--", lw=1, label=ref_label)
            ax.axhline(0.9 * ref, color="grey", ls=":", lw=1, label=f"0.9 x {ref_label}")
            ax.set_ylim(0, 1)
        ax.set(title=title, xlabel="training steps")
        ax.legend(fontsize=7)
    fig.suptitle("speech, quick preset: " + " against ".join(results), fontsize=9)
    plots.save_figure(fig, out / "compare")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 2000])
    p.add_argument("--objectives", nargs="+", default=["mi"])
    p.add_argument("--seed", type=int, default=200)
    p.add_argument("--profile", default="quick")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--selection",
        type=Path,
        default=runtime.in_work_dir("results/03_information_plane/selected_weights.json"),
        help="notebook 03's selected_weights.json (default: the one in results/)",
    )
    p.add_argument("--fallback-weights", action="store_true", help="ignore --selection")
    p.add_argument(
        "--kl-s-weight",
        type=float,
        default=None,
        help="objective.kl_s_weight (gamma on KL_s) instead of the preset's; the selection was "
        "made at the preset's, so pass --alpha (else the fallback weights)",
    )
    p.add_argument(
        "--decoder-variance",
        choices=("ml", "gradient"),
        default=None,
        help="model.decoder_variance instead of the preset's (the DSAE's decoder variance fit)",
    )
    p.add_argument("--alpha", type=float, default=None, help="alpha of mi and cmi")
    p.add_argument("--replot", action="store_true", help="redraw the figure from budget.json")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="LABEL=FOLDER",
        default=None,
        help="draw one figure over these folders' budget.json into --out, and train nothing",
    )
    a = p.parse_args(argv)
    out = a.out or runtime.in_work_dir("results/speech_budget")
    if a.compare:
        pairs = [item.split("=", 1) for item in a.compare]
        if any(len(pair) != 2 for pair in pairs):
            p.error(f"--compare takes LABEL=FOLDER items, got {a.compare}")
        folders = {label: Path(folder) / "budget.json" for label, folder in pairs}
        missing = [str(f) for f in folders.values() if not f.is_file()]
        if missing:
            p.error(f"--compare: no budget.json at {missing}; run the study into that folder first")
        compare_figure({k: json.loads(f.read_text()) for k, f in folders.items()}, out)
        return
    if a.replot:
        result = json.loads((out / "budget.json").read_text())
    else:
        overrides = {}
        if a.kl_s_weight is not None:
            overrides["objective__kl_s_weight"] = a.kl_s_weight
        if a.decoder_variance is not None:
            overrides["model__decoder_variance"] = a.decoder_variance
        selection = None if a.fallback_weights or overrides else a.selection
        result = run(a.steps, a.objectives, a.seed, a.profile, out, selection, overrides, a.alpha)
    figure(result, out)


if __name__ == "__main__":
    main()
