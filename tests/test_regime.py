"""The regime map reads cmi - mi at every dial point and real experiment, with decisions."""

from __future__ import annotations

import json

import numpy as np

from paperlib.reports import regime
from paperlib.reports.plots_mechanism import fig_regime_map


def _metric(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "per_seed": list(map(float, v))}


def _write(folder, metrics) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_rows_pair_cmi_with_mi_at_each_point_and_decide_over_the_map(tmp_path):
    mi = [0.50, 0.52, 0.49, 0.51, 0.50]
    _write(
        tmp_path / "05_mechanism",
        {
            # leak 0.1, z 2: cmi ahead by 0.2 on every seed; leak 0.9, z 2: the same as mi
            "mi_leak0.1_zdim2": {"probe_acc": _metric(mi)},
            "cmi_leak0.1_zdim2": {"probe_acc": _metric([m + 0.2 for m in mi])},
            "mi_leak0.9_zdim2": {"probe_acc": _metric(mi), "probe_acc_knn": _metric(mi)},
            "cmi_leak0.9_zdim2": {"probe_acc": _metric(mi), "probe_acc_knn": _metric(mi)},
            "elbo_leak0.9_zdim2": {"probe_acc": _metric(mi)},
        },
    )
    _write(
        tmp_path / "02_images_pixelcnn_vae",
        {
            "mi": {"probe_acc": _metric([0.8, 0.7, 0.9])},
            "cmi": {"probe_acc": _metric([0.7, 0.8, 0.8])},  # noisy: inconclusive
            "_meta": {"config": {"model": {"z_dim": 16}}},
        },
    )
    rows = regime.regime_rows(tmp_path)
    got = {(r.study, r.setting, r.z_dim, r.probe): r for r in rows}
    assert set(got) == {
        ("synthetic", "leak 0.1", 2, "probe_acc"),
        ("synthetic", "leak 0.9", 2, "probe_acc"),
        ("synthetic", "leak 0.9", 2, "probe_acc_knn"),
        ("images", "", 16, "probe_acc"),
    }
    ahead = got[("synthetic", "leak 0.1", 2, "probe_acc")]
    assert np.allclose(ahead.per_seed, 0.2) and ahead.n == 5 and ahead.decision == "cmi better"
    assert got[("synthetic", "leak 0.9", 2, "probe_acc")].decision == "equivalent"
    images = got[("images", "", 16, "probe_acc")]
    assert np.allclose(images.per_seed, [-0.1, 0.1, -0.1]) and images.decision == "inconclusive"
    table = regime.regime_table(rows)
    assert (
        "| synthetic (g) | leak 0.1 | 2 | 5 | +0.200 [+0.200, +0.200] | cmi better | – | – |"
        in table
    )
    # one Holm family per probe: 3 linear-probe rows, 1 k-NN row
    assert "linear probe 3, k-NN probe 1" in regime.regime_legend(rows)
    saved = json.loads(regime.write_regime(rows, tmp_path).read_text())
    assert len(saved["rows"]) == 4 and saved["rows"][0]["decision"] == "cmi better"


def test_no_results_give_no_rows(tmp_path):
    assert regime.regime_rows(tmp_path) == [] and regime.regime_table([]) == ""


def test_the_figure_has_one_panel_per_probe_and_the_margin_band(tmp_path):
    rows = [
        regime.RegimeRow("synthetic", "g", "leak 0.1", 2, "probe_acc", 5, 0.13, 0.06, 0.2, 0.03),
        regime.RegimeRow("speech", "speaker", "", 16, "probe_acc", 5, -0.05, -0.15, 0.04, 0.03),
        regime.RegimeRow("speech", "speaker", "", 16, "probe_acc_knn", 5, 0.0, -0.02, 0.02, 0.03),
    ]
    panels, margins = regime.regime_panels(rows)
    assert set(panels) == {"linear probe", "k-NN probe"} and margins["linear probe"] == 0.03
    fig = fig_regime_map(panels, margins)
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 2
    # both panels share the z dimensions; the legend names every series, the k-NN-less too
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "16"]
    legend = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert {"synthetic (g), leak 0.1", "speech (speaker)"} <= set(legend)
