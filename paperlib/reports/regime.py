"""The regime map: where does `cmi` beat `mi` on the global factor, against z's budget?

One row per (study, setting, z dimension): the paired per-seed difference cmi - mi of the
global-factor probe on z (the linear probe and the k-NN probe), with its 95 % t-interval over
seeds and a decision at the stated margin (``paperlib.presets.margins``), Holm-corrected over
the rows of each probe's column (one family per probe, as notebook 05 decides its dial points). The rows come from the committed metrics.json files:

- the controlled study (notebook 05): every dial point, ``{objective}_leak{l}_zdim{d}``;
- speech (notebook 01) and images (notebook 02): the z dimension of their model config.

`regime_rows` reads them, `regime_table` writes the short markdown table that README.md and
results/04_summary show, and `paperlib.reports.plots_mechanism.fig_regime_map` draws the figure.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from paperlib import records
from paperlib.presets.margins import FAMILY_ALPHA, MARGINS
from paperlib.stats import decide_contrasts, paired_difference

#: the global-factor probes the map reads, with their column names
PROBES = {"probe_acc": "linear probe", "probe_acc_knn": "k-NN probe"}

#: results folder -> (study name, what its global factor is)
STUDIES = {
    "05_mechanism": ("synthetic", "g"),
    "01_speech_dsae": ("speech", "speaker"),
    "02_images_pixelcnn_vae": ("images", "class"),
}

_POINT = re.compile(
    r"^(?P<objective>elbo|mi|cmi)_(?P<point>leak(?P<leak>[\d.]+)_zdim(?P<zdim>\d+))$"
)


@dataclass(frozen=True)
class RegimeRow:
    """One cell group of the map: cmi - mi of one probe at one (study, setting, z dimension)."""

    study: str
    factor: str
    setting: str
    z_dim: int
    probe: str
    n: int
    mean: float
    low: float
    high: float
    margin: float
    per_seed: tuple[float, ...] = ()
    decision: str = ""


def _per_seed(metrics: dict[str, Any], objective: str, key: str) -> list[float]:
    return list(metrics.get(objective, {}).get(key, {}).get("per_seed", []))


def _rows_of(metrics: dict[str, Any], study: str, factor: str) -> list[RegimeRow]:
    """cmi - mi per probe at every point of one metrics.json (dial points or one config)."""
    points: dict[str, tuple[str, int, str, str]] = {}  # name -> (setting, z_dim, cmi key, mi key)
    for key in metrics:
        m = _POINT.match(key)
        if m and m["objective"] == "cmi":
            points[m["point"]] = (
                f"leak {float(m['leak']):g}",
                int(m["zdim"]),
                key,
                f"mi_{m['point']}",
            )
    if not points and "cmi" in metrics:
        z_dim = int(metrics.get("_meta", {}).get("config", {}).get("model", {}).get("z_dim", 0))
        points["model"] = ("", z_dim, "cmi", "mi")
    rows = []
    for setting, z_dim, a, b in points.values():
        for probe in PROBES:
            va, vb = _per_seed(metrics, a, probe), _per_seed(metrics, b, probe)
            if len(va) != len(vb) or len(va) < 2:
                continue
            # d_k = probe(cmi)_k - probe(mi)_k over the paired seeds k, t-interval at 95 %
            d = paired_difference(va, vb)
            rows.append(
                RegimeRow(study, factor, setting, z_dim, probe, int(d["n"]), d["mean"], d["low"],
                          d["high"], MARGINS[probe][0], tuple(x - y for x, y in zip(va, vb)))
            )  # fmt: skip
    return rows


def regime_rows(results_dir: str | Path) -> list[RegimeRow]:
    """Every row of the map from `results_dir`, each with its decision (Holm over the map)."""
    results_dir = Path(results_dir)
    rows: list[RegimeRow] = []
    for folder, (study, factor) in STUDIES.items():
        path = results_dir / folder / "metrics.json"
        if path.exists():
            rows += _rows_of(records.read_metrics(path), study, factor)
    if not rows:
        return []
    # one family per probe: its column asks the same question at every point of the map, as
    # notebook 05 decides every dial point of one metric together (docs/DESIGN.md, "Decisions")
    decided: dict[int, dict[str, Any]] = {}
    for probe in PROBES:
        family = {i: (r.per_seed, *MARGINS[probe]) for i, r in enumerate(rows) if r.probe == probe}
        if family:
            decided.update(decide_contrasts(family, alpha=FAMILY_ALPHA))
    words = {"better": "cmi better", "worse": "cmi worse"}
    out = []
    for i, r in enumerate(rows):
        d = decided[i]
        word = words.get(str(d["decision"]), str(d["decision"]))
        if word.startswith("cmi") and d["within_margin"]:
            word += ", by less than the margin"
        out.append(RegimeRow(**{**asdict(r), "decision": word}))
    return out


def regime_table(rows: list[RegimeRow]) -> str:
    """The short markdown table: one line per (study, setting, z dimension), one column pair
    (difference, decision) per probe."""
    if not rows:
        return ""
    probes = [p for p in PROBES if any(r.probe == p for r in rows)]
    keys = list(dict.fromkeys((r.study, r.factor, r.setting, r.z_dim) for r in rows))
    by = {(r.study, r.factor, r.setting, r.z_dim, r.probe): r for r in rows}
    head = ["study (factor)", "setting", "z dim", "seeds"]
    for p in probes:
        head += [f"cmi - mi, {PROBES[p]} [95 %]", "decision"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for study, factor, setting, z_dim in keys:
        n = max(r.n for r in rows if (r.study, r.setting, r.z_dim) == (study, setting, z_dim))
        cells = [f"{study} ({factor})", setting or "–", str(z_dim), str(n)]
        for p in probes:
            r = by.get((study, factor, setting, z_dim, p))
            cells += (
                [f"{r.mean:+.3f} [{r.low:+.3f}, {r.high:+.3f}]", r.decision] if r else ["–", "–"]
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def regime_legend(rows: list[RegimeRow]) -> str:
    """One sentence on what the map's decisions mean, with the margins and the family size."""
    margins = ", ".join(
        f"{PROBES[p]} ±{MARGINS[p][0]:g}" for p in PROBES if any(r.probe == p for r in rows)
    )
    counts = {p: sum(r.probe == p for r in rows) for p in PROBES}
    sizes = ", ".join(f"{PROBES[p]} {n}" for p, n in counts.items() if n)
    leak = (
        " Leak (notebook 05): the share of the global factor g that one frame shows."
        if any(r.setting.startswith("leak") for r in rows)
        else ""
    )
    return (
        f"Paired per-seed differences on the test split; decisions at the margins stated before "
        f'the runs ({margins}; docs/DESIGN.md, "Decisions"), Holm-corrected over the rows of '
        f"each probe's column, one family per probe ({sizes}; family-wise error "
        f"{FAMILY_ALPHA:g}).{leak}"
    )


def regime_panels(rows: list[RegimeRow]) -> tuple[dict[str, dict[str, list]], dict[str, float]]:
    """`rows` as `fig_regime_map`'s input: (probe label -> series label -> points, margins)."""
    panels: dict[str, dict[str, list]] = {}
    for r in rows:
        name = f"{r.study} ({r.factor})" + (f", {r.setting}" if r.setting else "")
        point = (r.z_dim, r.mean, r.low, r.high, r.decision)
        panels.setdefault(PROBES[r.probe], {}).setdefault(name, []).append(point)
    return panels, {PROBES[p]: MARGINS[p][0] for p in PROBES}


def write_regime(rows: list[RegimeRow], out_dir: str | Path) -> Path:
    """``regime.json`` in `out_dir`: every row with its per-seed differences and decision."""
    path = Path(out_dir) / "regime.json"
    records.write_json(path, {"rows": [asdict(r) for r in rows], "legend": regime_legend(rows)})
    return path
