"""The summary step: every notebook's metrics.json and figures -> results/README.md.

Notebooks register each figure with `add_figure`, which saves PNG and PDF and records a
one-sentence caption in ``figures.json`` beside them; `write_summary` then builds the
paper-style tables (objective x experiment, mean +/- std over seeds, best per column in bold)
and embeds every figure with its caption.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from paperlib import io

# Metrics shown in the summary tables, with their direction (+1: higher is better).
TABLE_METRICS: dict[str, tuple[str, int]] = {
    "probe_acc": ("probe acc. z (mean)", +1),
    "probe_acc_sample": ("probe acc. z (sample)", +1),
    "eer": ("EER", -1),
    "kl_z_nats": ("KL(q(z|x)||p(z)) [nats]", 0),
    "mi_xz_nats": ("I(x;z) [nats]", 0),
    "mi_zs_nats": ("I(z;s) [nats]", -1),
    "phone_probe_acc_z": ("phone acc. from z", -1),
    "speaker_probe_acc_s": ("speaker acc. from s", -1),
    "local_probe_acc_z": ("local factor acc. from z", -1),
    "g_probe_acc_s": ("global factor acc. from s", -1),
    "critic_acc_zs_peak": ("training critic acc. (peak)", 0),
    "vc_speaker_acc": ("VC speaker consistency", +1),
    "vc_phone_acc": ("VC content kept", +1),
    "class_consistency": ("class consistency", +1),
    "nll_nats": ("NLL [nats/seq]", -1),
    "nll_bits_per_dim": ("NLL [bits/dim]", -1),
    "train_seconds": ("train time [s]", 0),
}


def add_figure(fig, out_dir: str | Path, name: str, caption: str) -> list[Path]:
    """Save `fig` as ``out_dir/name.png`` and ``.pdf`` and record its caption in figures.json."""
    from paperlib.plots import save_figure

    out_dir = Path(out_dir)
    paths = save_figure(fig, out_dir / name)
    index = out_dir / "figures.json"
    entries = json.loads(index.read_text()) if index.exists() else {}
    entries[name] = caption
    io.write_json(index, entries)
    return paths


def _fmt(v: dict[str, Any]) -> str:
    mean, std = v.get("mean"), v.get("std")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    n = len(v.get("per_seed", []))
    digits = 3 if abs(mean) < 10 else 1
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def metric_table(metrics: dict[str, Any], title: str = "") -> str:
    """A markdown table: rows = objectives, columns = metrics present, best per column in bold."""
    objectives = [k for k in metrics if not k.startswith("_")]
    columns = [m for m in TABLE_METRICS if any(m in metrics[o] for o in objectives)]
    if not objectives or not columns:
        return ""
    lines = []
    if title:
        lines.append(f"**{title}**\n")
    lines.append("| objective | " + " | ".join(TABLE_METRICS[c][0] for c in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
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
    for o in objectives:
        cells = []
        for c in columns:
            text = _fmt(metrics[o][c]) if c in metrics[o] else "–"
            cells.append(f"**{text}**" if best.get(c) == o else text)
        lines.append(f"| {o} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _run_all_time(results_dir: Path) -> str:
    """``; run_all.sh's wall time before the summary: ...`` when run_all.sh recorded it."""
    path = results_dir / "run_all.json"
    if not path.exists():
        return ""
    seconds = json.loads(path.read_text()).get("seconds_before_summary", 0.0)
    return f"; run_all.sh (notebooks in parallel) before this summary: {seconds:.0f} s"


def write_summary(results_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write ``results/README.md`` from every ``results/NN_name/metrics.json`` and figures.json."""
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
        metrics_path = nb_dir / "metrics.json"
        if metrics_path.exists():
            metrics = io.read_metrics(metrics_path)
            if "profile" in metrics.get("_meta", {}):
                meta_seen = metrics["_meta"]
            seeds = metrics.get("_meta", {}).get("params", {}).get("seeds")
            parts.append(metric_table(metrics, f"Test metrics, mean ± std over seeds {seeds}"))
            notes = metrics.get("_meta", {}).get("notes")
            if notes:
                parts.append(f"{notes}\n")
        figures = nb_dir / "figures.json"
        if figures.exists():
            for name, caption in json.loads(figures.read_text()).items():
                rel = f"{nb_dir.name}/{name}.png"
                parts.append(f"![{name}]({rel})\n\n*{caption}* ([PDF]({nb_dir.name}/{name}.pdf))\n")
        sections.append("\n".join(parts))
    header = [
        "# Results\n",
        "Every number below was measured by this repository's code on the data named in each",
        "section; none is typed in. Regenerate with `./run_all.sh`.\n",
        f"- profile: `{meta_seen.get('profile', 'unknown')}`",
        f"- git commit: `{meta_seen.get('git_commit', 'unknown')}`",
        f"- versions: {json.dumps(meta_seen.get('versions', {}))}",
        f"- sum of the notebooks' wall times: {total_wall:.0f} s ({total_wall / 60:.1f} min)"
        + _run_all_time(results_dir),
        f"- written: {time.strftime('%Y-%m-%d %H:%M %Z')}\n",
        "Bold marks the best objective per column where a direction is meaningful (higher",
        "probe accuracy and consistency; lower EER, NLL, I(z;s) and redundant-information probes).\n",
    ]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(header) + "\n" + "\n".join(sections))
    return out_path
