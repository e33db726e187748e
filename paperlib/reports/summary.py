"""The summary step: every notebook's metrics.json and figures -> results/README.md.

Notebooks register each figure with `Figures` (``figs.add(name, fig, caption)``, through
`add_figure`), which saves PNG and PDF and records a one-sentence caption in ``figures.json``
beside them; `write_summary` then builds the paper-style tables (objective x experiment, mean
+/- std over seeds, or mean [95 % t-interval over seeds] for the I(z;s) estimates that carry
per-seed bootstrap bounds; best per column in bold) and embeds every figure with its caption.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

from paperlib import records
from paperlib.reports.plots import (  # the flags and reference rows that the figures show as well
    CRITIC_ACC_KEY,
    CRITIC_CHANCE_ACC,
    FLAG,
    REFERENCE_ROWS,
    critic_flags,
    floors_of,
    save_figure,
    seeds_where,
)
from paperlib.reports.regime import regime_legend, regime_rows, regime_table
from paperlib.training.regularizers import MONITOR_RATIO

# Metrics shown in the summary tables, with their direction (+1: higher is better).
TABLE_METRICS: dict[str, tuple[str, int]] = {
    "probe_acc": ("probe acc. z (mean)", +1),
    "probe_acc_sample": ("probe acc. z (sample)", +1),
    "probe_acc_knn": ("k-NN probe acc. z", +1),
    "eer": ("EER", -1),
    "kl_z_nats": ("KL(q(z|x)||p(z)) [nats]", 0),
    "mi_xz_nats": ("I(x;z) [nats]", 0),
    "mi_zs_target_nats": ("I(z;s), penalty's target, other family [nats]", -1),
    "mi_zs_nats": ("I(z;s_1:T), fresh critic [nats]", -1),
    "mi_zs_pooled_nats": ("I(z;mean s), fresh critic [nats]", -1),
    "phone_probe_acc_z": ("phone acc. from z", -1),
    "speaker_probe_acc_s": ("speaker acc. from s", -1),
    "local_probe_acc_z": ("local factor acc. from z", -1),
    "g_probe_acc_s": ("global factor acc. from s", -1),
    "critic_acc_zs_peak": ("training critic acc. (peak)", 0),
    "vc_speaker_acc": ("VC speaker consistency", +1),
    "vc_phone_acc": ("VC content kept", +1),
    "class_consistency": ("class consistency", +1),
    "critic_acc_zs_final": ("training critic acc.", 0),
    "mi_zs_train_final": ("I(z;s), training critic [nats]", 0),
    "mi_zs_critic_nats": ("I(z;s), training critic on test rows [nats]", 0),
    "critic_acc_before_beta": ("critic held-out acc. before beta", 0),
    "monitor_ratio_final": ("monitor: critic / other family", 0),
    "instrument_ratio_eval": ("critic / other family at evaluation", 0),
    "nll_nats": ("NLL [nats/seq]", -1),
    "nll_bits_per_dim": ("NLL [bits/dim]", -1),
    "trained": ("trained (fraction of seeds)", 0),
    "val_elbo_gain_last_fifth": ("val. ELBO gain, last fifth", 0),
    "train_seconds": ("train time [s]", 0),
    "eval_seconds": ("evaluation time [s]", 0),
}


# The questions the metric tables answer, one table each (in this order), so that no table
# is wider than MAX_COLUMNS; a metric of TABLE_METRICS in no group goes to the last table.
TABLE_GROUPS: dict[str, tuple[str, ...]] = {
    "What z knows of the global factor": (
        "probe_acc", "probe_acc_sample", "probe_acc_knn", "eer", "vc_speaker_acc",
        "class_consistency",
    ),
    "Where the local factor sits (z should not hold it; s should)": (
        "phone_probe_acc_z", "local_probe_acc_z", "speaker_probe_acc_s", "g_probe_acc_s",
        "vc_phone_acc",
    ),
    "Information [nats]": (
        "kl_z_nats", "mi_xz_nats", "mi_zs_target_nats", "mi_zs_nats", "mi_zs_pooled_nats",
    ),
    "The training critic (the instrument)": (
        "critic_acc_before_beta", "critic_acc_zs_peak", "critic_acc_zs_final",
        "mi_zs_train_final", "mi_zs_critic_nats", "monitor_ratio_final",
        "instrument_ratio_eval",
    ),
    "Fit and cost": (
        "trained", "val_elbo_gain_last_fifth", "nll_nats", "nll_bits_per_dim", "train_seconds",
        "eval_seconds",
    ),
}  # fmt: skip
#: the widest table the summary writes, the objective column included
MAX_COLUMNS = 8


def table_groups(columns: list[str]) -> list[tuple[str, list[str]]]:
    """`columns` split by question (`TABLE_GROUPS`), each part at most MAX_COLUMNS - 1 wide."""
    grouped = [c for g in TABLE_GROUPS.values() for c in g]
    groups = [(q, [c for c in cols if c in columns]) for q, cols in TABLE_GROUPS.items()]
    rest = [c for c in columns if c not in grouped]
    if rest:
        groups.append(("Other metrics", rest))
    width = MAX_COLUMNS - 1
    return [
        (q if len(cols) <= width else f"{q} ({i // width + 1})", cols[i : i + width])
        for q, cols in groups
        if cols
        for i in range(0, len(cols), width)
    ]


def add_figure(fig, out_dir: str | Path, name: str, caption: str) -> list[Path]:
    """Save `fig` as ``out_dir/name.png`` and ``.pdf`` and record its caption in figures.json."""
    out_dir = Path(out_dir)
    paths = save_figure(fig, out_dir / name)
    index = out_dir / "figures.json"
    entries = json.loads(index.read_text()) if index.exists() else {}
    entries[name] = caption
    records.write_json(index, entries)
    return paths


class Figures:
    """One notebook's figures: ``figs = Figures(out_dir)``, then ``figs.add(name, fig, caption)``
    for each figure (PNG, PDF and the caption in figures.json, through `add_figure`).

    ``paths`` maps each added name to the files written, in the order the figures were added.
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.paths: dict[str, list[Path]] = {}

    def add(self, name: str, fig, caption: str) -> None:
        """Save `fig` as ``<out_dir>/<name>.png`` and ``.pdf`` with its one-sentence caption.

        Returns None: a notebook cell that ends with this call shows the figure and no list of
        paths.
        """
        self.paths[name] = add_figure(fig, self.out_dir, name, caption)


def _cell(text: str) -> str:
    """Text for a markdown table cell: a bare ``|`` (as in KL(q(z|x)||p(z))) would split it."""
    return text.replace("|", "\\|")


def _fmt(v: dict[str, Any]) -> str:
    mean, std = v.get("mean"), v.get("std")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    n = len(v.get("per_seed", []))
    digits = 3 if abs(mean) < 10 else 1
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


# Marks a cell whose interval is one seed's bootstrap over rows, not an interval over seeds.
PER_SEED_MARK = "‡"


def intervals(metrics: dict[str, Any], level: float = 0.95) -> dict[str, dict[str, dict]]:
    """``{objective: {metric: {"mean", "low", "high", "n", "interval"}}}`` for every metric
    that carries per-seed bootstrap bounds (``mi_zs_nats`` with ``mi_zs_nats_low`` / ``_high``).

    Computed here from the per-seed values of `metrics` (the metrics.json layout) with
    `paperlib.stats.across_seeds`: the t-interval over seeds, never the mean of the per-seed
    bounds (so a metrics.json written before the bounds stopped being averaged reads the same).
    """
    from paperlib.stats import across_seeds

    seeds = _seeds(metrics)
    return {
        o: across_seeds({k: v.get("per_seed", []) for k, v in ms.items()}, seeds, level)
        for o, ms in metrics.items()
        if not o.startswith("_")
    }


def _fmt_interval(iv: dict[str, Any]) -> str:
    """``mean [low, high]``, marked when the interval is one seed's bootstrap."""
    mean, low, high = iv["mean"], iv["low"], iv["high"]
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return fmt_value(mean)
    mark = f" {PER_SEED_MARK}" if iv["n"] < 2 else ""
    return f"{fmt_value(mean)} [{fmt_value(low)}, {fmt_value(high)}]{mark}"


# A cmi run whose training critic and the other family's fresh critic read I(z;s) more than
# MONITOR_RATIO apart on validation rows is flagged: its instrument is not trusted there.
MONITOR_FLAG = "§"


#: the derived per-seed key: the training critic against the other family at evaluation
EVAL_RATIO = "instrument_ratio_eval"


def with_eval_agreement(metrics: dict[str, Any]) -> dict[str, Any]:
    """`metrics` with ``instrument_ratio_eval`` added to every objective that has both readings
    of the penalty's target at evaluation: ``instrument.agreement`` (max / min, each raised to
    0.05 nats) of the training critic on test rows (``mi_zs_critic_nats``) and the other
    family's fresh critic (``mi_zs_target_nats``), per seed. The monitor compares the two
    families at the last training step on validation rows with a smaller fit; this is the same
    comparison with evaluation's budget. Derived here rather than stored, so that every
    metrics.json that has the two readings gets it. The input is not modified."""
    from paperlib.estimators.instrument import agreement

    out = dict(metrics)
    for o, ms in metrics.items():
        if o.startswith("_") or "mi_zs_critic_nats" not in ms or "mi_zs_target_nats" not in ms:
            continue
        a, b = (
            ms["mi_zs_critic_nats"].get("per_seed", []),
            ms["mi_zs_target_nats"].get("per_seed", []),
        )
        # one ratio per seed; a seed without either reading (a withheld critic) has none
        ratios = [
            agreement(float(x), float(y)) if x is not None and y is not None else None
            for x, y in zip(a, b, strict=False)
        ]
        known = [r for r in ratios if r is not None]
        if known:
            out[o] = {**ms, EVAL_RATIO: {**records.summarize(known), "per_seed": ratios}}
    return out


def monitor_flags(metrics: dict[str, Any], ratio: float = MONITOR_RATIO) -> dict[str, list]:
    """``{objective: [indices of seeds whose two I(z;s) readings differ by more than `ratio`]}``:
    the training critic against a fresh critic of the other family, on validation rows at the
    run's last step (``monitor_ratio_final``, paperlib.training.regularizers.CMIObjective.monitor)
    or at evaluation (`with_eval_agreement`). Either one flags the seed."""
    over = lambda v: v > ratio  # noqa: E731
    flags = seeds_where(metrics, "monitor_ratio_final", over)
    for o, seeds in seeds_where(with_eval_agreement(metrics), EVAL_RATIO, over).items():
        flags[o] = sorted(set(flags.get(o, [])) | set(seeds))
    return flags


def _seeds(metrics: dict[str, Any]) -> list:
    meta = metrics.get("_meta", {})
    seeds = meta.get("params", {}).get("seeds") or meta.get("seeds")
    if seeds:
        return list(seeds)
    first = next((ms for o, ms in metrics.items() if not o.startswith("_")), {})
    n = max((len(v.get("per_seed", [])) for v in first.values()), default=0)
    return list(range(n))


def fmt_value(v: float) -> str:
    """3 decimals, 1 from 10 up: the number format of every table the suite writes."""
    return f"{v:.{3 if abs(v) < 10 else 1}f}"


def metric_table(
    metrics: dict[str, Any], title: str = "", floors: dict[str, float] | None = None
) -> str:
    """Markdown tables, one per question (`table_groups`, at most MAX_COLUMNS wide): rows =
    objectives, columns = the metrics present, best per column in bold.

    Under the objectives come reference rows (chance, random init, raw input, shuffled z,
    ceiling) from `floors` (default: ``metrics["_meta"]["floors"]``, as stored by
    ``records.write_metrics(..., floors=res.floors)``) and from per-run ``<metric>@<reference>``
    keys; a reference row appears only when it has a value for some column. An objective with
    a seed whose training critic stayed at chance (`critic_flags`) is marked with a dagger and
    a footnote. The paired differences follow in `paired_table`.

    Cells are mean ± std over seeds, except for metrics with per-seed bootstrap bounds
    (I(z;s) estimates): ``mean [low, high]``, the 95 % t-interval over seeds of the per-seed
    estimates (`intervals`), with a footnote; with one seed, that seed's bootstrap interval
    over rows, marked and footnoted as such.
    """
    metrics = with_eval_agreement(metrics)
    objectives = [k for k in metrics if not k.startswith("_")]
    columns = [m for m in TABLE_METRICS if any(m in metrics[o] for o in objectives)]
    if not objectives or not columns:
        return ""
    refs = floors_of(metrics, floors)
    flags = critic_flags(metrics)
    disagree = monitor_flags(metrics)
    seeds = _seeds(metrics)
    ivs = intervals(metrics)
    best: dict[str, str] = {}
    for c in columns:
        direction = TABLE_METRICS[c][1]
        vals = {
            o: metrics[o][c]["mean"]
            for o in objectives
            if c in metrics[o] and metrics[o][c]["mean"] is not None
        }
        if direction and len(vals) > 1:
            best[c] = (max if direction > 0 else min)(vals, key=vals.get)
    lines = []
    if title:
        lines.append(f"**{title}**\n")
    for question, cols in table_groups(columns):
        lines.append(f"*{question}*\n")
        lines.append("| objective | " + " | ".join(_cell(TABLE_METRICS[c][0]) for c in cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for o in objectives:
            cells = []
            for c in cols:
                if c in ivs[o]:
                    text = _fmt_interval(ivs[o][c])
                else:
                    text = _fmt(metrics[o][c]) if c in metrics[o] else "–"
                cells.append(f"**{text}**" if best.get(c) == o else text)
            name = f"{o} {FLAG}" if o in flags else o
            name = f"{name} {MONITOR_FLAG}" if o in disagree else name
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for ref, label in REFERENCE_ROWS:
            cells = [fmt_value(refs[f"{c}@{ref}"]) if f"{c}@{ref}" in refs else "" for c in cols]
            if any(cells):
                lines.append(f"| *{label}* | " + " | ".join(cells) + " |")
        lines.append("")
    notes = _interval_notes(ivs, columns)
    for o, bad in flags.items():
        which = ", ".join(str(seeds[i]) if i < len(seeds) else f"#{i}" for i in bad)
        notes.append(
            f"{FLAG} `{o}`: the training critic's accuracy stayed below {CRITIC_CHANCE_ACC} "
            f"(chance 0.5) for seed(s) {which}, so its I(z;s) penalty was close to inert there."
        )
    for o, bad in disagree.items():
        which = ", ".join(str(seeds[i]) if i < len(seeds) else f"#{i}" for i in bad)
        notes.append(
            f"{MONITOR_FLAG} `{o}`: for seed(s) {which} the training critic and a fresh critic "
            f"of the other family read I(z;s) more than {MONITOR_RATIO}x apart, on validation "
            "rows at the last step (monitor) or on the penalty's target at evaluation: the "
            "instrument is not trusted there."
        )
    return "\n".join(lines) + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _interval_notes(ivs: dict[str, dict[str, dict]], columns: list[str]) -> list[str]:
    """Footnotes that say what the bracketed intervals of `metric_table` are."""
    shown = [(c, ivs[o][c]) for o in ivs for c in columns if c in ivs[o]]
    notes = []
    over = sorted({int(iv["n"]) for _, iv in shown if iv["n"] >= 2})
    if over:
        names = ", ".join(dict.fromkeys(TABLE_METRICS[c][0] for c, iv in shown if iv["n"] >= 2))
        notes.append(
            f"{names}: mean [95 % t-interval over {' or '.join(map(str, over))} seeds] of the "
            "per-seed estimates (each seed's bootstrap interval over rows is in metrics.json, "
            "not averaged)."
        )
    one = [iv["interval"] for _, iv in shown if iv["n"] < 2 and math.isfinite(iv["low"])]
    for label in dict.fromkeys(one):
        notes.append(f"{PER_SEED_MARK} {label}: one seed, so no interval over seeds.")
    return notes


def _pairs_head(metrics: dict[str, Any], pairs: list[str], first: str, title: str) -> list[str]:
    """Title, header and separator of a table whose columns are objective pairs "a - b"; a
    pair whose `a` has a flagged critic (`critic_flags`) carries the dagger."""
    flags = critic_flags(metrics)
    heads = [f"{p} {FLAG}" if p.split(" - ")[0] in flags else p for p in pairs]
    lines = [f"**{title}**\n"] if title else []
    lines.append(f"| {first} | " + " | ".join(heads) + " |")
    lines.append("|---" * (len(heads) + 1) + "|")
    return lines


def paired_table(
    metrics: dict[str, Any],
    pairs: tuple[tuple[str, str], ...] = (("cmi", "mi"), ("cmi", "elbo")),
    level: float = 0.95,
    title: str = "",
) -> str:
    """A markdown table of paired per-seed differences: rows = metrics, columns = pairs.

    Each cell is ``mean [low, high]``, the mean of a - b over seeds with a t-interval at
    `level` (`paperlib.stats.paired_difference`), computed from the per-seed values in
    `metrics` (the metrics.json layout; every objective ran the same seeds, in order). A pair
    whose first objective has a flagged critic (`critic_flags`) carries the dagger.
    """
    from paperlib.stats import paired_table as _paired

    per_seed = {
        o: {k: v.get("per_seed", []) for k, v in ms.items()}
        for o, ms in metrics.items()
        if not o.startswith("_")
    }
    diffs = _paired(per_seed, _seeds(metrics), pairs=pairs, level=level)
    diffs = {p: rows for p, rows in diffs.items() if rows}
    skip = ("train_seconds", "eval_seconds", CRITIC_ACC_KEY)  # not outcomes of the objective
    rows = [m for m in TABLE_METRICS if m not in skip and any(m in d for d in diffs.values())]
    if not rows:
        return ""
    lines = _pairs_head(metrics, list(diffs), "metric", title)
    for m in rows:
        cells = []
        for d in diffs.values():
            if m in d:
                v = d[m]
                cells.append(
                    f"{fmt_value(v['mean'])} [{fmt_value(v['low'])}, {fmt_value(v['high'])}]"
                )
            else:
                cells.append("–")
        lines.append(f"| {_cell(TABLE_METRICS[m][0])} | " + " | ".join(cells) + " |")
    n = int(max(v["n"] for d in diffs.values() for v in d.values()))
    lines.append(
        f"\nPaired differences over {n} seeds: mean [{int(level * 100)} % t-interval]; an "
        "interval that contains 0 shows no difference at this number of seeds."
    )
    return "\n".join(lines) + "\n"


def decisions(
    metrics: dict[str, Any],
    pairs: tuple[tuple[str, str], ...] = (("cmi", "mi"), ("cmi", "elbo")),
) -> dict[tuple[str, str], dict[str, Any]]:
    """``{("a - b", metric): decision}`` for every headline metric with a stated margin
    (``paperlib.presets.margins.MARGINS``) that both objectives report for every seed.

    One family: `paperlib.stats.decide_contrasts` Holm-corrects over all of its cells, so the
    README's headline and results/README.md's decision tables read the same words.
    """
    from paperlib.presets.margins import FAMILY_ALPHA, MARGINS
    from paperlib.stats import decide_contrasts

    seeds = _seeds(metrics)
    contrasts: dict[tuple[str, str], tuple[list[float], float, int]] = {}
    for a, b in pairs:
        if a not in metrics or b not in metrics:
            continue
        for m, (margin, direction) in MARGINS.items():
            va = metrics[a].get(m, {}).get("per_seed", [])
            vb = metrics[b].get(m, {}).get("per_seed", [])
            if len(va) == len(vb) == len(seeds) and len(seeds) >= 2:
                d = [x - y for x, y in zip(va, vb)]
                contrasts[(f"{a} - {b}", m)] = (d, margin, direction)
    return decide_contrasts(contrasts, alpha=FAMILY_ALPHA) if contrasts else {}


def decision_word(r: dict[str, Any]) -> str:
    """The decision of one contrast in words: better / worse (", by less than the margin"
    when the difference is real but inside it), equivalent, or inconclusive."""
    word = str(r["decision"])
    if word in ("better", "worse") and r["within_margin"]:
        word += ", by less than the margin"
    return word


def decision_table(
    metrics: dict[str, Any],
    pairs: tuple[tuple[str, str], ...] = (("cmi", "mi"), ("cmi", "elbo")),
    title: str = "",
) -> str:
    """A markdown table of decisions: rows = the headline metrics with a stated margin
    (``paperlib.presets.margins.MARGINS``), columns = pairs.

    Each cell is the decision of `decisions` on the per-seed paired differences,
    Holm-corrected over every cell of the table (one family): "better", "worse",
    "equivalent" (within +-margin) or "inconclusive", with the mean difference. An "a" whose
    critic stayed at chance carries the dagger, as in `paired_table`.
    """
    from paperlib.presets.margins import FAMILY_ALPHA, MARGINS

    decided = decisions(metrics, pairs)
    if not decided:
        return ""
    cols = list(dict.fromkeys(p for p, _ in decided))
    rows = list(dict.fromkeys(m for _, m in decided))
    lines = _pairs_head(metrics, cols, "metric (margin)", title)
    for m in rows:
        cells = []
        for p in cols:
            r = decided.get((p, m))
            cells.append(
                "–" if r is None else f"{decision_word(r)} ({fmt_value(float(r['mean']))})"
            )
        label = TABLE_METRICS.get(m, (m, 0))[0]
        lines.append(f"| {_cell(label)} (±{MARGINS[m][0]:g}) | " + " | ".join(cells) + " |")
    n = len(_seeds(metrics))
    lines.append(
        f"\nDecisions over {n} paired seeds, Holm-corrected over the {len(decided)} cells of "
        f"this table (family-wise error {FAMILY_ALPHA:g}): better / worse, the difference is not "
        "0; equivalent, two one-sided tests put it within the margin; inconclusive, neither. "
        'Margins were stated before the runs (docs/DESIGN.md, "Decisions").'
    )
    return "\n".join(lines) + "\n"


def _run_all_time(results_dir: Path) -> str:
    """``; run_all.sh's wall time before the summary: ...`` when run_all.sh recorded it."""
    path = results_dir / "run_all.json"
    if not path.exists():
        return ""
    seconds = json.loads(path.read_text()).get("seconds_before_summary", 0.0)
    return f"; run_all.sh (notebooks in parallel) before this summary: {seconds:.0f} s"


def _overridden(run_json: Path) -> str:
    """The parameters a notebook ran with beyond profile and folders, e.g. "steps=1500"."""
    if not run_json.exists():
        return ""
    params = json.loads(run_json.read_text()).get("params", {})
    skip = {"profile", "out_dir", "results_dir"}
    return ", ".join(f"`{k}={v!r}`" for k, v in params.items() if k not in skip)


def _command(results_dir: Path) -> str:
    """The recorded run_all.sh command (run_all.json), in backticks, when it ran every notebook
    folder here; after a partial run (``--only``) the command for all of them first, then it."""
    path = results_dir / "run_all.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    last = record.get("command", "./run_all.sh")
    here = {p.parent.name for p in Path(results_dir).glob("[0-9][0-9]_*/run.json")}
    if "--only" not in last.split() or here <= set(record.get("notebooks", here)):
        return f"`{last}`"
    whole = re.sub(r"\s--only\s+\S+|\s--force\b", "", last)  # the same, for every notebook
    return f"`{whole}` (this version's last run: `{last}`)"


def commits_by_notebook(results_dir: str | Path) -> list[str]:
    """``"NN at <commit>"`` (7 characters) for each notebook folder of `results_dir` with a
    metrics.json: which code made it, when the folders come from different commits."""
    made = []
    for path in sorted(Path(results_dir).glob("[0-9][0-9]_*/metrics.json")):
        commit = records.read_metrics(path).get("_meta", {}).get("git_commit")
        made.append(f"{path.parent.name[:2]} at {str(commit)[:7] if commit else 'unknown'}")
    return made


def write_summary(
    results_dir: str | Path,
    out_path: str | Path | None = None,
    regime_figure: bool | None = None,
) -> Path:
    """Write ``results/README.md`` from every ``results/NN_name/metrics.json`` and figures.json.

    The regime map's figure (``04_summary/regime_map.png``) is embedded when `regime_figure`
    is True (notebook 04 drew it; it may still sit in the runner's staging folder), or, left
    None, when the file exists."""
    results_dir = Path(results_dir)
    out_path = Path(out_path) if out_path else results_dir / "README.md"
    sections: list[str] = []
    meta_seen: dict[str, Any] = {}
    total_wall = 0.0
    notebooks = sorted(p for p in results_dir.iterdir() if p.is_dir() and p.name[:2].isdigit())
    for nb_dir in notebooks:
        if nb_dir.name.endswith("_summary"):
            continue
        run = nb_dir / "run.json"
        wall = json.loads(run.read_text()).get("wall_seconds", 0.0) if run.exists() else 0.0
        total_wall += wall
        parts = [f"## {nb_dir.name}\n", f"Wall time: {wall:.0f} s.\n"]
        extra = _overridden(run)
        if extra:
            parts.append(f"Parameters set for this run: {extra}.\n")
        metrics_path = nb_dir / "metrics.json"
        if metrics_path.exists():
            metrics = records.read_metrics(metrics_path)
            if "profile" in metrics.get("_meta", {}):
                meta_seen = metrics["_meta"]
            seeds = metrics.get("_meta", {}).get("params", {}).get("seeds")
            split = {"val": "Validation"}.get(metrics.get("_meta", {}).get("split"), "Test")
            title = f"{split} metrics over seeds {seeds}: mean ± std, or mean [interval]"
            parts.append(metric_table(metrics, title))
            parts.append(paired_table(metrics, title="Paired differences per seed"))
            parts.append(decision_table(metrics, title="Decisions at the stated margins"))
            notes = metrics.get("_meta", {}).get("notes")
            if notes:
                parts.append(f"{notes}\n")
        figures = nb_dir / "figures.json"
        if figures.exists():
            for name, caption in json.loads(figures.read_text()).items():
                rel = f"{nb_dir.name}/{name}.png"
                parts.append(f"![{name}]({rel})\n\n*{caption}* ([PDF]({nb_dir.name}/{name}.pdf))\n")
        sections.append("\n".join(parts))
    rows = regime_rows(results_dir)
    if rows:  # the regime map opens the results, as it opens README.md
        parts = ["## Regime map: where cmi beats mi on the global factor\n"]
        drawn = (results_dir / "04_summary" / "regime_map.png").exists()
        if regime_figure or (regime_figure is None and drawn):
            parts.append("![regime_map](04_summary/regime_map.png)\n")
        parts += [regime_table(rows) + "\n", regime_legend(rows) + "\n"]
        sections.insert(0, "\n".join(parts))
    made_by = commits_by_notebook(results_dir)
    header = [
        "# Results\n",
        "Every number below was measured by this repository's code on the data named in each",
        f"section; none is typed in. Regenerate with {_command(results_dir)}.\n",
        f"- profile: `{meta_seen.get('profile', 'unknown')}`",
        f"- git commit of each notebook's metrics.json: {', '.join(made_by)}",
        f"- versions: {json.dumps(meta_seen.get('versions', {}))}",
        f"- sum of the notebooks' wall times: {total_wall:.0f} s ({total_wall / 60:.1f} min)"
        + _run_all_time(results_dir),
        f"- written: {time.strftime('%Y-%m-%d %H:%M %Z')}\n",
        "Bold marks the best objective per column where a direction is meaningful (higher",
        "probe accuracy and consistency; lower EER, NLL, I(z;s) and redundant-information probes).",
        "Italic rows under each table are computed floors and ceilings: *chance* (the most",
        "frequent label; EER 0.5), *random init* (the same architecture untrained, same probe),",
        "*raw input* (logistic regression on utterance-mean log-mel frames or on pixels),",
        "*shuffled z* (samples generated from another item's z) and *ceiling* (the evaluating",
        "classifier on real test data).\n",
    ]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(header) + "\n" + "\n".join(sections))
    return out_path
