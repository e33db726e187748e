"""The README's headline: the regime map and the per-model tables, written from results/ so
that no number in them is typed in.

    python -m paperlib.reports.headline            # rewrite the blocks in README.md
    python -m paperlib.reports.headline --check    # exit 1 if a block differs from results/

Two blocks, each between ``<!-- NAME: ... -->`` and ``<!-- /NAME -->`` in README.md:

- ``headline`` (the front door): the regime map of `paperlib.reports.regime` (cmi - mi on the
  global factor against z's budget, per study, with decisions), and which commit made each
  results folder;
- ``per-model``: for each real experiment (notebooks 01 and 02) one compact table: the
  objectives' means over the reported seeds, the computed floors and ceiling, the paired
  ``cmi - mi`` difference with its 95 % t-interval, and the decision at the stated margin
  (`paperlib.reports.summary.decisions`, the same family and words as results/README.md).

``run_all.sh`` rewrites both after its summary when it wrote the committed results folder; a test checks that the committed README matches committed results/.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlib import records
from paperlib.reports.regime import regime_legend, regime_rows, regime_table
from paperlib.reports.summary import (
    MONITOR_FLAG,
    commits_by_notebook,
    critic_flags,
    decision_word,
    decisions,
    floors_of,
    fmt_value,
    intervals,
    monitor_flags,
)
from paperlib.stats import paired_difference

#: README.md's generated blocks: name -> (opening marker, closing marker). The regime map opens the
#: README (the front door); the per-model tables follow the two commands.
MARKERS = {
    name: (
        f"<!-- {name}: python -m paperlib.reports.headline writes this block -->",
        f"<!-- /{name} -->",
    )
    for name in ("headline", "per-model")
}
BEGIN, END = MARKERS["headline"]

#: the pair the headline contrasts: the paper's claim is about cmi against mi
PAIR = ("cmi", "mi")

#: reference rows of the headline, in the order they are listed in a cell: (key suffix, tag)
REFERENCES = (
    ("random_init", "init"),
    ("raw_input", "raw"),
    ("shuffled_z", "shuffled"),
    ("ceiling", "ceiling"),
)


@dataclass(frozen=True)
class Headline:
    """One experiment's headline table: the results folder, its title and its columns
    (metric key -> column header), at most seven so that the table stays eight wide."""

    folder: str
    title: str
    columns: dict[str, str]


HEADLINES = (
    Headline(
        "01_speech_dsae",
        "Speech, DSAE on the synthetic corpus",
        {
            "probe_acc": "speaker probe on z",
            "probe_acc_knn": "k-NN probe on z",
            "eer": "EER",
            "vc_speaker_acc": "VC speaker consistency",
            "mi_zs_target_nats": "I(z;s) target [nats]",
            "critic_acc_zs_final": "training critic acc.",
            "trained": "trained",
        },
    ),
    Headline(
        "02_images_pixelcnn_vae",
        "Images, PixelCNN-VAE on MNIST-5k at 14x14",
        {
            "probe_acc": "class probe on z",
            "probe_acc_knn": "k-NN probe on z",
            "probe_acc_sample": "(z sample)",
            "class_consistency": "class consistency",
            "mi_zs_target_nats": "I(z;s) target [nats]",
            "critic_acc_zs_final": "training critic acc.",
            "trained": "trained",
        },
    ),
)


def _mean(v: dict[str, Any]) -> float | None:
    m = v.get("mean")
    return None if m is None or (isinstance(m, float) and math.isnan(m)) else float(m)


def _cell(metrics: dict[str, Any], ivs: dict[str, dict], objective: str, key: str) -> str:
    """mean ± sd over seeds, mean [t-interval] for an estimate with bootstrap bounds."""
    if key not in metrics[objective]:
        return "–"
    if key in ivs.get(objective, {}):
        iv = ivs[objective][key]
        if math.isfinite(iv["low"]) and math.isfinite(iv["high"]) and iv["n"] >= 2:
            return f"{fmt_value(iv['mean'])} [{fmt_value(iv['low'])}, {fmt_value(iv['high'])}]"
    v = metrics[objective][key]
    mean = _mean(v)
    if mean is None:
        return "n/a"
    if key == "trained":  # a fraction of seeds: say how many
        n = len(v.get("per_seed", []))
        return f"{round(mean * n)}/{n}" if n else fmt_value(mean)
    if len(v.get("per_seed", [])) > 1:
        return f"{fmt_value(mean)} ± {fmt_value(float(v['std']))}"
    return fmt_value(mean)


def headline_table(metrics: dict[str, Any], spec: Headline) -> str:
    """One experiment's headline table (markdown) from its metrics.json content."""
    objectives = [o for o in ("elbo", "mi", "cmi") if o in metrics]
    cols = [k for k in spec.columns if any(k in metrics[o] for o in objectives)]
    ivs = intervals(metrics)
    refs = floors_of(metrics, None)
    flags, disagree = critic_flags(metrics), monitor_flags(metrics)
    lines = [
        "| | " + " | ".join(spec.columns[k] for k in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for o in objectives:
        name = o + (" †" if o in flags else "") + (f" {MONITOR_FLAG}" if o in disagree else "")
        lines.append(f"| {name} | " + " | ".join(_cell(metrics, ivs, o, k) for k in cols) + " |")
    ref_cells = [
        " / ".join(
            f"{tag} {fmt_value(refs[f'{k}@{r}'])}" for r, tag in REFERENCES if f"{k}@{r}" in refs
        )
        for k in cols
    ]
    if any(ref_cells):
        lines.append(
            "| *floors / ceiling* | " + " | ".join(f"*{c}*" if c else "" for c in ref_cells) + " |"
        )
    a, b = PAIR
    if a in metrics and b in metrics:
        diff_cells, decision_cells = [], []
        decided = decisions(metrics)
        for k in cols:
            va, vb = (
                metrics[a].get(k, {}).get("per_seed", []),
                metrics[b].get(k, {}).get("per_seed", []),
            )
            if k in ("trained", "critic_acc_zs_final") or len(va) != len(vb) or len(va) < 2:
                diff_cells.append("")
            else:
                d = paired_difference(va, vb)
                # d = mean_k (a_k - b_k), with the t-interval over the paired seeds
                diff_cells.append(f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]")
            r = decided.get((f"{a} - {b}", k))
            decision_cells.append(decision_word(r) if r else "")
        lines.append(f"| **{a} - {b} (paired, 95 %)** | " + " | ".join(diff_cells) + " |")
        if any(decision_cells):
            lines.append("| *decision at the margin* | " + " | ".join(decision_cells) + " |")
    return "\n".join(lines)


def _describe(metrics: dict[str, Any], spec: Headline) -> str:
    """The line above a table: folder, split, seeds, steps, chance and the selected weights."""
    meta = metrics.get("_meta", {})
    seeds = meta.get("params", {}).get("seeds") or []
    steps = meta.get("config", {}).get("train", {}).get("steps")
    split = {"val": "validation"}.get(meta.get("split"), "test")
    chance = floors_of(metrics, None).get("probe_acc@chance")
    weights = meta.get("weights", {})
    chosen = ", ".join(
        f"`{o}` alpha {_weight(w['alpha'])}"
        + (f" beta {_weight(w['beta'])}" if w.get("beta") else "")
        for o, w in weights.items()
        if w.get("alpha")
    )
    parts = [f"`results/{spec.folder}/`", f"{split} split", f"seeds {', '.join(map(str, seeds))}"]
    if steps:
        parts.append(f"{steps} steps")
    if chance is not None:
        parts.append(f"chance {fmt_value(chance)}")
    if chosen:
        # alpha and beta passed as parameters bypass notebook 03's selection: say so
        given = all(meta.get("params", {}).get(w) is not None for w in ("alpha", "beta"))
        parts.append(
            f"weights {'given as parameters' if given else 'chosen on validation'}: {chosen}"
        )
    return f"**{spec.title}** ({'; '.join(parts)})."


def _weight(x: float) -> str:
    return f"{x:g}"


def _made_by(results_dir: Path) -> str:
    made = ", ".join(commits_by_notebook(results_dir))
    return f"**Which code made which folder** (each metrics.json's commit): {made}."


def headline_block(results_dir: str | Path) -> str:
    """The front door's block (markers excluded): the regime map (figure, when notebook 04 drew
    it, and table, `paperlib.reports.regime`), its legend and which commit made each folder."""
    results_dir = Path(results_dir)
    rows = regime_rows(results_dir)
    parts = []
    figure = results_dir / "04_summary" / "regime_map.png"
    if figure.exists():
        rel = figure.relative_to(results_dir.parent).as_posix()
        parts.append(f"![cmi - mi on the global factor against z's budget]({rel})")
    if rows:
        parts.append(regime_table(rows))
        parts.append(regime_legend(rows) + " " + _made_by(results_dir))
    else:
        parts.append(_made_by(results_dir))
    return "\n\n".join(parts)


def per_model_block(results_dir: str | Path) -> str:
    """The per-model block (markers excluded): one table per experiment of `HEADLINES` whose
    metrics.json exists, then the legend."""
    results_dir = Path(results_dir)
    tables = []
    for spec in HEADLINES:
        path = results_dir / spec.folder / "metrics.json"
        if path.exists():
            metrics = records.read_metrics(path)
            tables.append(_describe(metrics, spec) + "\n\n" + headline_table(metrics, spec))
    legend = (
        "Cells: mean ± sd over seeds; I(z;s): mean [95 % t-interval over seeds]; *trained*: "
        "seeds on their validation plateau (docs/DESIGN.md). The decision row is Holm-corrected "
        "over the notebook's family of contrasts at the margins stated in docs/DESIGN.md; † a "
        f"training critic at chance, {MONITOR_FLAG} a training critic the other family disagrees with."
    )
    return "\n\n".join([*tables, legend])


BLOCKS = {"headline": headline_block, "per-model": per_model_block}


def sync_readme(readme: str | Path, results_dir: str | Path, check: bool = False) -> bool:
    """Rewrite every generated block of `readme` (`MARKERS`) from `results_dir`; with `check`,
    only compare. Returns True when every block already matched.

    Raises ValueError naming the file and the block when a block's markers are missing or out of
    order."""
    readme = Path(readme)
    text = original = readme.read_text()
    for name, (begin, end) in MARKERS.items():
        i, j = text.find(begin), text.find(end)
        if i < 0 or j < i:
            raise ValueError(
                f"{readme}: the {name} block's markers {begin!r} ... {end!r} are missing or out of order"
            )
        block = "\n" + BLOCKS[name](results_dir) + "\n"
        text = text[: i + len(begin)] + block + text[j:]
    if text == original:
        return True
    if not check:
        readme.write_text(text)
    return False


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(
        prog="python -m paperlib.reports.headline", description=__doc__.split("\n")[0]
    )
    p.add_argument("--readme", type=Path, default=root / "README.md")
    p.add_argument("--results", type=Path, default=root / "results")
    p.add_argument(
        "--check", action="store_true", help="exit 1 if the block differs; write nothing"
    )
    args = p.parse_args(argv)
    same = sync_readme(args.readme, args.results, check=args.check)
    if args.check and not same:
        print(
            f"{args.readme}: the headline block differs from {args.results}; run {p.prog}",
            file=sys.stderr,
        )
        return 1
    print(f"{args.readme}: headline blocks {'up to date' if same else 'rewritten'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
