"""The README's headline tables are written from results/, never typed in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paperlib.reports import headline
from paperlib.stats import paired_difference

ROOT = Path(__file__).resolve().parents[1]


def _metric(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "per_seed": list(map(float, v))}


def _metrics(cmi_probe: list[float], mi_probe: list[float]) -> dict:
    seeds = list(range(len(mi_probe)))
    return {
        "elbo": {"probe_acc": _metric([0.5] * len(seeds))},
        "mi": {"probe_acc": _metric(mi_probe), "trained": _metric([1.0] * len(seeds))},
        "cmi": {
            "probe_acc": _metric(cmi_probe),
            "trained": _metric([1.0] * (len(seeds) - 1) + [0.0]),
            "critic_acc_zs_final": _metric([0.8] * len(seeds)),
        },
        "_meta": {
            "params": {"seeds": seeds},
            "config": {"train": {"steps": 500}, "model": {"z_dim": 16}},
            "floors": {"probe_acc@chance": 0.1, "probe_acc@random_init": 0.3},
            "weights": {"mi": {"alpha": 2.0, "beta": 0.0}, "cmi": {"alpha": 2.0, "beta": 4.0}},
            "git_commit": "0123456789abcdef",
        },
    }


SPEC = headline.HEADLINES[0]


def _row(table: str, label: str) -> list[str]:
    line = next(r for r in table.splitlines() if r.startswith(f"| {label}"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_paired_row_and_decision_come_from_the_per_seed_values():
    mi = [0.70, 0.71, 0.69, 0.70, 0.72]
    cmi = [0.80, 0.82, 0.79, 0.81, 0.83]  # +0.10 on every seed: better, well past 0.03
    table = headline.headline_table(_metrics(cmi, mi), SPEC)
    d = paired_difference(cmi, mi)
    assert _row(table, "**cmi - mi")[0] == f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
    assert _row(table, "*decision")[0] == "better"
    # 4 of 5 seeds trained; the floors row tags its values
    assert "4/5" in _row(table, "cmi")
    assert _row(table, "*floors")[0] == "*init 0.300*"


def test_identical_objectives_are_decided_equivalent_not_better():
    mi = [0.70, 0.71, 0.69, 0.70, 0.72]
    cmi = [m + e for m, e in zip(mi, [0.001, -0.001, 0.0, 0.002, -0.002])]
    table = headline.headline_table(_metrics(cmi, mi), SPEC)
    assert _row(table, "*decision")[0] == "equivalent"


def test_the_line_above_a_table_says_where_its_weights_came_from():
    m = _metrics([0.7] * 3, [0.7, 0.71, 0.69])
    assert "weights chosen on validation: `mi` alpha 2" in headline._describe(m, SPEC)
    # alpha and beta passed to the notebook bypass notebook 03's selection
    m["_meta"]["params"].update(alpha=2.0, beta=4.0)
    line = headline._describe(m, SPEC)
    assert "weights given as parameters: `mi` alpha 2, `cmi` alpha 2 beta 4" in line
    assert "chosen on validation" not in line


def test_a_critic_at_chance_is_flagged_in_the_table():
    m = _metrics([0.7] * 3, [0.7, 0.71, 0.69])
    m["cmi"]["critic_acc_zs_final"] = _metric([0.5, 0.51, 0.8])
    assert "| cmi † |" in headline.headline_table(m, SPEC)


def test_sync_rewrites_only_the_block_and_check_reports_a_difference(tmp_path):
    results = tmp_path / "results" / SPEC.folder
    results.mkdir(parents=True)
    (results / "metrics.json").write_text(
        json.dumps(_metrics([0.8, 0.82, 0.79], [0.7, 0.71, 0.69]))
    )
    readme = tmp_path / "README.md"
    (b1, e1), (b2, e2) = headline.MARKERS.values()
    readme.write_text(f"before\n{b1}\nstale 0.999\n{e1}\nmiddle\n{b2}\n{e2}\nafter\n")
    assert (
        headline.main(["--readme", str(readme), "--results", str(tmp_path / "results"), "--check"])
        == 1
    )
    assert "stale 0.999" in readme.read_text(), "--check writes nothing"
    assert headline.sync_readme(readme, tmp_path / "results") is False
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "stale" not in text
    assert "\nmiddle\n" in text
    assert "01 at 0123456" in text and "`cmi` alpha 2 beta 4" in text
    # the regime map's row for this experiment: z dimension from the config, 3 paired seeds
    assert "| speech (speaker) | – | 16 | 3 | +0.103 [" in text
    assert headline.sync_readme(readme, tmp_path / "results", check=True) is True


def test_missing_markers_name_the_file(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    with pytest.raises(ValueError, match="README.md: the headline block's markers"):
        headline.sync_readme(readme, tmp_path)


def test_the_committed_readme_matches_the_committed_results():
    assert headline.sync_readme(ROOT / "README.md", ROOT / "results", check=True), (
        "README.md's headline tables differ from results/: run python -m paperlib.reports.headline"
    )


def test_the_results_readme_names_the_commit_of_each_notebook_folder(tmp_path):
    # folders made by different commits: one commit in the header would misname the others
    import json

    from paperlib import records
    from paperlib.reports.summary import commits_by_notebook, write_summary

    for name, commit in (("01_speech_dsae", "a" * 40), ("02_images_pixelcnn_vae", "b" * 40)):
        per_seed = {"probe_acc": [0.5, 0.6]}
        records.write_metrics(tmp_path / name / "metrics.json", {"mi": per_seed})
        path = tmp_path / name / "metrics.json"
        payload = records.read_metrics(path)
        payload["_meta"]["git_commit"] = commit
        path.write_text(json.dumps(payload))
    assert commits_by_notebook(tmp_path) == ["01 at aaaaaaa", "02 at bbbbbbb"]
    text = write_summary(tmp_path).read_text()
    assert "01 at aaaaaaa, 02 at bbbbbbb" in text
