"""Every fig_* runs on tiny inputs and save_figure writes PNG and PDF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def agg_backend():
    """Draw off-screen without touching the environment of other tests."""
    import matplotlib

    previous = matplotlib.get_backend()
    matplotlib.use("Agg", force=True)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
    matplotlib.use(previous, force=True)


@pytest.fixture
def plots():
    from paperlib.reports import plots

    return plots


@pytest.fixture
def plots_generation():
    from paperlib.reports import plots_generation

    return plots_generation


@pytest.fixture
def plots_information():
    from paperlib.reports import plots_information

    return plots_information


OBJECTIVES = ("elbo", "mi", "cmi")


def _check_and_save(plots, fig, tmp_path, name):
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    paths = plots.save_figure(fig, tmp_path / "sub" / name)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_training_curves_rows_and_long_frames(plots, tmp_path):
    rows = [{"step": s, "loss": 10.0 / (s + 1), "kl_z": 0.1 * s} for s in range(5)]
    long = pd.DataFrame(
        [
            {"step": s, "key": k, "value": v, "seed": seed}
            for seed in (0, 1)
            for s in range(5)
            for k, v in (("loss", 9.0 / (s + 1) + seed), ("kl_z", 0.2 * s))
        ]
    )
    fig = plots.fig_training_curves({"elbo": rows, "cmi": long}, keys=["loss", "kl_z"])
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    assert fig.axes[0].get_xlabel() == "training step"
    _check_and_save(plots, fig, tmp_path, "curves")


def test_tsne(plots, tmp_path):
    rng = np.random.default_rng(0)
    emb = {o: (rng.standard_normal((30, 4)), rng.integers(0, 3, 30)) for o in OBJECTIVES}
    fig = plots.fig_tsne(emb, seed=0, max_points=20)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [
        plots.objective_label(o) for o in OBJECTIVES
    ]
    _check_and_save(plots, fig, tmp_path, "tsne")


def test_metric_table(plots, tmp_path):
    metrics = {
        o: {
            "probe_acc": {"mean": 0.5 + k / 10, "std": 0.05, "per_seed": [0.5, 0.6, 0.55]},
            "kl_z_nats": {"mean": 3.0 * k, "std": 0.2},
        }
        for k, o in enumerate(OBJECTIVES)
    }
    metrics["_meta"] = {"profile": "smoke"}
    fig = plots.fig_metric_table(metrics)
    assert "nats" in fig.axes[1].get_ylabel()
    _check_and_save(plots, fig, tmp_path, "metrics")


def test_disentanglement(plots, tmp_path):
    as_dict = {
        "speaker_probe_acc_z": 0.9,
        "phone_probe_acc_z": 0.2,
        "speaker_probe_acc_s": 0.3,
        "phone_probe_acc_s": 0.8,
        "speaker_chance": 0.1,
        "phone_chance": 0.15,
    }
    fig = plots.fig_disentanglement({"elbo": np.array([[0.5, 0.3], [0.6, 0.7]]), "cmi": as_dict})
    assert "chance" not in fig.axes[0].get_xticklabels()[0].get_text()  # first is an array
    fig2 = plots.fig_disentanglement({"cmi": as_dict})
    assert "chance 0.10" in fig2.axes[0].get_xticklabels()[0].get_text()
    _check_and_save(plots, fig, tmp_path, "disentanglement")


def test_voice_conversion(plots, tmp_path, plots_generation):
    rng = np.random.default_rng(0)
    grid = rng.standard_normal((2, 3, 12, 8))
    fig = plots_generation.fig_voice_conversion(grid, row_labels=["a -> b", "c -> d"])
    _check_and_save(plots, fig, tmp_path, "vc")
    examples = {
        "content": grid[:, 0],
        "speaker": grid[:, 1],
        "converted": grid[:, 2],
        "content_speaker": np.array([0, 1]),
        "speaker_speaker": np.array([2, 3]),
    }
    fig2 = plots_generation.fig_voice_conversion(examples)
    assert "spk 0 -> spk 2" in fig2.axes[0].get_ylabel()


def test_rate_distortion_and_information_plane(plots, tmp_path, plots_information):
    pts = {
        o: [(1.0 + k, 50.0 - k, f"a={k}"), (2.0 + k, 45.0 - k)] for k, o in enumerate(OBJECTIVES)
    }
    fig = plots_information.fig_rate_distortion(pts)
    assert "nats" in fig.axes[0].get_xlabel() and "nats" in fig.axes[0].get_ylabel()
    _check_and_save(plots, fig, tmp_path, "rd")
    fig2 = plots_information.fig_information_plane(pts, bound_nats=np.log(64))
    assert fig2.axes[0].get_xlabel() == "I(z; s) [nats]"
    _check_and_save(plots, fig2, tmp_path, "infoplane")


def test_sample_grid(plots, tmp_path, plots_generation):
    rng = np.random.default_rng(0)
    fig = plots_generation.fig_sample_grid(
        rng.random((2, 3, 8, 8)), row_labels=["test z", "prior z"]
    )
    _check_and_save(plots, fig, tmp_path, "grid")
    fig2 = plots_generation.fig_sample_grid(rng.random((2, 2, 3, 8, 8)))  # colour images (C first)
    _check_and_save(plots, fig2, tmp_path, "grid_rgb")
    with pytest.raises(ValueError, match="rows, cols"):
        plots_generation.fig_sample_grid(rng.random((8, 8)))


def test_probe_vs_beta(plots, tmp_path, plots_information):
    series = {
        "speaker_probe_acc_z": [(0.0, 0.6, 0.05), (1.0, 0.7, 0.04), (100.0, 0.8, 0.02)],
        "speaker_probe_acc_s": [(0.0, 0.4), (1.0, 0.3), (100.0, 0.2)],
    }
    fig = plots_information.fig_probe_vs_beta(series, chance=0.1)
    assert fig.axes[0].get_xscale() == "symlog"
    _check_and_save(plots, fig, tmp_path, "probe_beta")


def test_objective_colours_fixed_and_style_is_scoped(plots, plots_information):
    import matplotlib as mpl

    assert plots.objective_color("cmi") == plots.OBJECTIVE_COLORS["cmi"]
    assert plots.objective_color("cmi_x") == plots.objective_color("cmi_x")
    assert len(set(plots.OBJECTIVE_COLORS.values())) == len(plots.OBJECTIVE_COLORS)
    before = dict(mpl.rcParams)
    plots_information.fig_rate_distortion({"elbo": [(1.0, 2.0)]})
    assert dict(mpl.rcParams) == before


def test_information_diagram_labels_the_identity(plots, tmp_path, plots_information):
    fig = plots_information.fig_information_diagram()
    assert len(fig.axes) == 2
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    for region in ("I(x;z\\,|\\,s)", "I(z;s)", "I(x;s\\,|\\,z)", "H(x)", "H(z)", "H(s)"):
        assert region in texts
    assert "I(z;s\\,|\\,x) = 0" in texts  # the condition of the identity is stated
    _check_and_save(plots, fig, tmp_path, "information_diagram")
    assert len(plots_information.fig_information_diagram(show_graph=False).axes) == 1


def _metrics_with_floors():
    per_seed = {"elbo": [0.50, 0.55, 0.52], "mi": [0.60, 0.64, 0.61], "cmi": [0.62, 0.66, 0.62]}
    metrics = {
        o: {
            "probe_acc": {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v},
            "class_consistency@shuffled_z": {"mean": 0.1, "std": 0.0, "per_seed": [0.1] * 3},
        }
        for o, v in per_seed.items()
    }
    metrics["cmi"]["critic_acc_zs_final"] = {"mean": 0.6, "std": 0.1, "per_seed": [0.7, 0.5, 0.6]}
    metrics["_meta"] = {
        "params": {"seeds": [10, 11, 12]},
        "floors": {"probe_acc@chance": 0.1, "probe_acc@random_init": 0.49},
    }
    return metrics


def test_metric_table_draws_floors_and_flags_a_critic_at_chance(plots, tmp_path):
    metrics = _metrics_with_floors()
    fig = plots.fig_metric_table(metrics, ["probe_acc"])
    ax = fig.axes[0]
    refs = {line.get_gid(): line.get_ydata()[0] for line in ax.get_lines() if line.get_gid()}
    assert refs == {
        "chance": 0.1,
        "random_init": 0.49,
    }  # chance and random init drawn at their values
    assert {t.get_text() for t in ax.texts} == {"chance", "random init"}
    assert [t.get_text() for t in ax.get_xticklabels()][-1].endswith("†")  # cmi, seed 11
    # explicit floors replace the stored ones
    fig = plots.fig_metric_table(metrics, ["probe_acc"], floors={"probe_acc@raw_input": 0.8})
    assert [line.get_gid() for line in fig.axes[0].get_lines() if line.get_gid()] == ["raw_input"]
    _check_and_save(plots, fig, tmp_path, "metrics_floors")


def test_close_reference_lines_keep_their_labels_apart(plots):
    metrics = _metrics_with_floors()
    floors = {"probe_acc@chance": 0.100, "probe_acc@random_init": 0.104}
    fig = plots.fig_metric_table(metrics, ["probe_acc"], floors=floors)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert len(boxes) == 2 and not boxes[0].overlaps(boxes[1])


def test_paired_differences_figure(plots, tmp_path):
    from paperlib.stats import paired_table

    metrics = _metrics_with_floors()
    per_seed = {
        o: {"probe_acc": m["probe_acc"]["per_seed"]} for o, m in metrics.items() if o[0] != "_"
    }
    paired = paired_table(per_seed, seeds=[10, 11, 12])
    fig = plots.fig_paired_differences(paired)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cmi - mi", "cmi - elbo"]
    _check_and_save(plots, fig, tmp_path, "paired")
    # one seed (the smoke profile): a figure that says why it is empty, not a failure
    empty = plots.fig_paired_differences({"cmi - mi": {}})
    assert "at least two seeds" in empty.axes[0].texts[0].get_text()


def test_paired_differences_tick_labels_do_not_overlap(plots):
    # the EER panel of notebook 01 (b00fde8): differences of a few thousandths drew five
    # labels like "-0.010", "-0.005", "0.000" into a 2.6-inch panel, run together
    paired = {
        "cmi - mi": {"eer": {"mean": -0.003, "low": -0.0097, "high": 0.0033, "n": 5}},
        "cmi - elbo": {"eer": {"mean": 0.002, "low": -0.0041, "high": 0.0082, "n": 5}},
    }
    fig = plots.fig_paired_differences(paired)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    shown = [t for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi and t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in shown]
    assert len(boxes) >= 2
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def test_summary_tables_show_references_pairs_and_the_flag():
    from paperlib.reports import summary

    metrics = _metrics_with_floors()
    text = summary.metric_table(metrics)
    cmi = metrics["cmi"]["probe_acc"]
    assert f"| cmi † | **{cmi['mean']:.3f} ± {cmi['std']:.3f}** |" in text  # best, and flagged
    assert "| *chance* | 0.100 |" in text and "| *random init* | 0.490 |" in text
    assert "*raw input*" not in text  # no value, no row
    assert "seed(s) 11" in text and "below 0.55" in text
    paired = summary.paired_table(metrics)
    d = np.subtract([0.62, 0.66, 0.62], [0.60, 0.64, 0.61])
    assert "| metric | cmi - mi † | cmi - elbo † |" in paired
    assert f"| probe acc. z (mean) | {d.mean():.3f} [" in paired
    # without the critic key nothing is flagged
    del metrics["cmi"]["critic_acc_zs_final"]
    assert "†" not in summary.metric_table(metrics) + summary.paired_table(metrics)


def test_a_seed_whose_instruments_disagree_at_evaluation_is_flagged():
    """The monitor reads the two families at the last step; evaluation reads them again with
    its own budget. A seed apart by more than 1.5x in either is flagged, and the ratio at
    evaluation gets its own column; a withheld critic (None) flags nothing."""
    from paperlib.reports import summary

    def per_seed(values):
        known = [v for v in values if v is not None]
        return {"mean": float(np.mean(known)), "std": 0.0, "per_seed": list(values)}

    metrics = {
        "_meta": {"params": {"seeds": [100, 101, 102]}},
        "mi": {"probe_acc": per_seed([0.7, 0.7, 0.7])},
        "cmi": {
            "probe_acc": per_seed([0.7, 0.7, 0.7]),
            "monitor_ratio_final": per_seed([1.1, 1.2, 1.1]),  # the monitor agrees everywhere
            "mi_zs_critic_nats": per_seed([0.45, 0.60, None]),
            "mi_zs_target_nats": per_seed([0.78, 0.66, 1.00]),
        },
    }
    assert summary.monitor_flags(metrics) == {"cmi": [0]}  # 0.78 / 0.45 = 1.73 > 1.5
    ratio = summary.with_eval_agreement(metrics)["cmi"][summary.EVAL_RATIO]["per_seed"]
    assert ratio[0] == pytest.approx(0.78 / 0.45) and ratio[1] == pytest.approx(1.1)
    assert ratio[2] is None and summary.EVAL_RATIO not in metrics["cmi"]  # input untouched
    text = summary.metric_table(metrics)
    assert f"| cmi {summary.MONITOR_FLAG} |" in text and "seed(s) 100 " in text
    assert "critic / other family at evaluation" in text
    # below a twentieth of a nat two readings agree whatever their ratio
    metrics["cmi"]["mi_zs_critic_nats"] = per_seed([0.01, 0.04, 0.02])
    metrics["cmi"]["mi_zs_target_nats"] = per_seed([0.04, 0.01, 0.05])
    assert summary.monitor_flags(metrics) == {}


def _metrics_with_bounds(seeds):
    """metrics.json of post-hoc I(z;s) per seed with each seed's (narrow) bootstrap bounds, as
    metrics.json stored them before the bounds stopped being averaged (their mean is set)."""
    rng = np.random.default_rng(0)
    metrics = {}
    for k, o in enumerate(OBJECTIVES):
        v = 0.3 + 0.1 * k + 0.1 * rng.standard_normal(len(seeds))
        metrics[o] = {
            key: {"mean": float(np.mean(vals)), "std": 0.0, "per_seed": [float(x) for x in vals]}
            for key, vals in (
                ("mi_zs_nats", v),
                ("mi_zs_nats_low", v - 0.05),
                ("mi_zs_nats_high", v + 0.05),
                ("probe_acc", np.full(len(seeds), 0.5)),
            )
        }
    metrics["_meta"] = {"params": {"seeds": list(seeds)}}
    return metrics


def test_summary_interval_over_seeds_is_the_t_interval_of_the_per_seed_values():
    from paperlib.reports import summary
    from paperlib.stats import t_interval

    metrics = _metrics_with_bounds([10, 11, 12])
    text = summary.metric_table(metrics)
    for o in OBJECTIVES:
        mean, low, high = t_interval(metrics[o]["mi_zs_nats"]["per_seed"])
        assert f"{mean:.3f} [{low:.3f}, {high:.3f}]" in text, o
        avg_low = metrics[o]["mi_zs_nats_low"]["mean"]  # the mean of the bootstrap bounds
        assert f"[{avg_low:.3f}," not in text
    assert "mean [95 % t-interval over 3 seeds] of the per-seed estimates" in text
    assert "0.500 ± 0.000" in text  # metrics without bounds keep mean ± std
    assert summary.PER_SEED_MARK not in text


def test_summary_labels_a_single_seeds_bootstrap_interval():
    from paperlib.reports import summary

    metrics = _metrics_with_bounds([100])
    text = summary.metric_table(metrics)
    mi = metrics["mi"]
    cell = (
        f"{mi['mi_zs_nats']['mean']:.3f} [{mi['mi_zs_nats_low']['per_seed'][0]:.3f}, "
        f"{mi['mi_zs_nats_high']['per_seed'][0]:.3f}] {summary.PER_SEED_MARK}"
    )
    assert cell in text
    assert f"{summary.PER_SEED_MARK} per-seed bootstrap over rows, seed 100" in text
    assert "t-interval" not in text


def test_metric_figure_leaves_out_the_per_seed_bounds(plots, tmp_path):
    fig = plots.fig_metric_table(_metrics_with_bounds([10, 11, 12]))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 2, titles  # mi_zs_nats and probe_acc, not the bounds
    _check_and_save(plots, fig, tmp_path, "metrics_bounds")


def test_figures_add_writes_png_pdf_and_the_caption(tmp_path):
    import json

    import matplotlib.pyplot as plt

    from paperlib.reports import summary

    figs = summary.Figures(tmp_path / "01_speech_dsae")
    assert figs.add("metrics", plt.figure(), "What the metrics show.") is None
    figs.add("tsne_z", plt.figure(), "Where z puts each speaker.")
    out = tmp_path / "01_speech_dsae"
    for name in ("metrics", "tsne_z"):
        assert [p.name for p in figs.paths[name]] == [f"{name}.png", f"{name}.pdf"]
        assert all(p.exists() and p.stat().st_size > 0 for p in figs.paths[name])
    captions = json.loads((out / "figures.json").read_text())
    assert captions == {"metrics": "What the metrics show.", "tsne_z": "Where z puts each speaker."}
    assert list(figs.paths) == ["metrics", "tsne_z"]  # the order the notebook added them
