"""Weights chosen on validation data reach notebooks 01/02 explicitly, and only when they match."""

import json

import pytest

from paperlib import config
from paperlib.studies import experiment, selection
from paperlib.training.train import History


def _write(tmp_path, cfg, **edits):
    sel = {"mi": {"alpha": 3.0, "beta": 0.0}, "cmi": {"alpha": 3.0, "beta": 8.0}, "_evidence": {}}
    path = selection.write_selection(
        tmp_path / "selected_weights.json", {cfg.experiment: sel}, {cfg.experiment: cfg}, [0, 1]
    )
    if edits:
        data = json.loads(path.read_text())
        data.update(edits)
        path.write_text(json.dumps(data))
    return path


def test_a_matching_selection_is_used_and_overridden_by_explicit_weights(tmp_path):
    cfg = config.load("quick", "images")
    sel = selection.load_selection(_write(tmp_path, cfg), cfg)
    assert sel["cmi"] == {"alpha": 3.0, "beta": 8.0}
    # the objective name, weights and seed are what a sweep varies: they do not break the match
    run = experiment.run_config(cfg, "cmi", 7, alpha=1.0, beta=1.0)
    assert selection.load_selection(tmp_path / "selected_weights.json", run) == sel
    assert selection.weights_for("images", "cmi", selection=sel) == {"alpha": 3.0, "beta": 8.0}
    assert selection.weights_for("images", "cmi", beta=2.0, selection=sel)["beta"] == 2.0
    assert selection.weights_for("images", "mi", beta=5.0, selection=sel)["beta"] == 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(train__steps=123), "training steps"),
        (dict(data__batch_size=64), "base config"),
        (dict(profile="smoke"), "profile"),
    ],
)
def test_a_stale_or_foreign_selection_is_refused_with_the_fix(tmp_path, change, message):
    cfg = config.load("quick", "images")
    path = _write(tmp_path, cfg)
    other = cfg.replace(**change)
    with pytest.raises(ValueError, match=message) as err:
        selection.load_selection(path, other)
    assert "--only 03" in str(err.value)


def test_a_missing_selection_names_the_file_and_the_fix(tmp_path):
    cfg = config.load("quick", "speech")
    with pytest.raises(FileNotFoundError, match="--only 03"):
        selection.load_selection(tmp_path / "nope.json", cfg)
    with pytest.raises(ValueError, match="no entry for experiment 'speech'"):
        selection.load_selection(_write(tmp_path, config.load("quick", "images")), cfg)


def test_training_metrics_flag_a_critic_at_chance():
    rows = [{"step": s, "critic_acc_zs": 0.5, "mi_zs": 0.01} for s in range(10, 110, 10)]
    h = History(rows=rows, train_seconds=3.0, steps=100, best_step=80)
    m = experiment.training_metrics(h)
    assert m["critic_at_chance"] == 1.0 and m["best_step"] == 80.0
    rows[-2:] = [{"step": 90, "critic_acc_zs": 0.8, "mi_zs": 1.0}] * 2
    m = experiment.training_metrics(History(rows=rows, steps=100))
    assert m["critic_acc_zs_final"] == pytest.approx(0.8) and m["critic_at_chance"] == 0.0
    assert "critic_acc_zs_final" not in experiment.training_metrics(History(rows=[{"step": 1}]))


def _sweep_rows(scores: dict[tuple[str, float, float], float]) -> list[dict]:
    return [
        {"objective": o, "alpha": a, "beta": b, "seed": s, "split": "val", "probe_acc": p}
        for (o, a, b), p in scores.items()
        for s in (0, 1)
    ]


def test_a_choice_on_the_edge_asks_for_the_next_weight_outward_until_it_is_inside():
    # mi chosen at the lower edge of {1, 3}; tied cmi at the upper edge: both weights move
    scores = {("mi", 1.0, 0.0): 0.8, ("mi", 3.0, 0.0): 0.7,
              ("cmi", 1.0, 1.0): 0.6, ("cmi", 3.0, 3.0): 0.9}  # fmt: skip
    assert selection.widening(_sweep_rows(scores)) == [
        ("mi", pytest.approx(1 / 3), 0.0),
        ("cmi", 9.0, 9.0),
    ]
    # an untied grid: a line search from the choice (alpha 1, beta 3), one weight at a time
    grid = {("cmi", a, b): 0.5 for a in (1.0, 3.0) for b in (1.0, 3.0)}
    grid[("cmi", 1.0, 3.0)] = 0.9
    assert selection.widening(_sweep_rows(grid)) == [
        ("cmi", pytest.approx(1 / 3), 3.0),
        ("cmi", 1.0, 9.0),
    ]
    # the new points score lower: the choice is inside its grid and nothing more is asked
    grid.update({("cmi", 1 / 3, 3.0): 0.4, ("cmi", 1.0, 9.0): 0.7})
    assert selection.widening(_sweep_rows(grid)) == []
    # a better point beyond the edge moves the choice there, and the search goes on from it
    grid[("cmi", 1.0, 9.0)] = 0.95
    assert selection.widening(_sweep_rows(grid)) == [("cmi", 1.0, 27.0)]


def test_a_tied_sweep_puts_cmi_at_beta_equal_alpha():
    grid = selection.sweep_grid(["elbo", "mi", "cmi"], [1.0, 3.0], "tied")
    assert grid == [
        ("elbo", 0.0, 0.0),
        ("mi", 1.0, 0.0),
        ("mi", 3.0, 0.0),
        ("cmi", 1.0, 1.0),
        ("cmi", 3.0, 3.0),
    ]
    with pytest.raises(ValueError, match="'tied'"):
        selection.sweep_grid(["cmi"], [1.0], "untied")


@pytest.mark.slow
def test_sweeps_in_parallel_processes_give_the_rows_of_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_WORKDIR", str(tmp_path))
    bases = {n: config.load("smoke", n, train__steps=2) for n in ("speech", "images")}
    grid = [("elbo", 0.0, 0.0), ("cmi", 1.0, 1.0)]
    one = experiment.sweeps(bases, grid, [0], jobs=1)
    # a grid per experiment (notebook 03's widening rounds): each gets its own, runs reused
    per = experiment.sweeps(bases, {"speech": grid[:1], "images": grid[1:]}, [0], jobs=1)
    assert [r["objective"] for r in per["speech"]] == ["elbo"]
    assert [r["probe_acc"] for r in per["images"]] == [r["probe_acc"] for r in one["images"][1:]]
    monkeypatch.setenv("PAPERLIB_WORKDIR", str(tmp_path / "fresh"))  # trained anew, in workers
    both = experiment.sweeps(bases, grid, [0], jobs=2)
    for name in bases:
        keys = ("objective", "alpha", "beta", "seed", "probe_acc")
        assert [{k: r[k] for k in keys} for r in one[name]] == [
            {k: r[k] for k in keys} for r in both[name]
        ]
        # a worker may run with other thread counts than this process: rounding differs
        for a, b in zip(one[name], both[name]):
            assert a["kl_z_nats"] == pytest.approx(b["kl_z_nats"], rel=1e-4)


def test_a_choice_on_the_grid_edge_is_named_with_the_next_value_to_try():
    from paperlib.studies.selection import reading_edges, select_weights, widen

    assert widen([1.0, 3.0], 1.0) == pytest.approx(1 / 3)
    assert widen([1.0, 3.0], 3.0) == pytest.approx(9.0)
    assert widen([0.5, 1.0, 2.0], 1.0) is None  # inside
    assert widen([2.0], 2.0) is None  # one value: no edge
    assert widen([0.0, 1.0, 3.0], 3.0) == pytest.approx(9.0)  # a 0 below leaves the top edge
    assert widen([0.0, 1.0], 0.0) is None and widen([0.0, 1.0], 1.0) == pytest.approx(2.0)
    rows = [
        {"objective": o, "alpha": a, "beta": a if o == "cmi" else 0.0, "seed": s,
         "split": "val", "probe_acc": p}
        for o, a, p in (("mi", 1.0, 0.8), ("mi", 3.0, 0.7), ("mi", 9.0, 0.6),
                        ("cmi", 1.0, 0.5), ("cmi", 3.0, 0.9), ("cmi", 9.0, 0.6))
        for s in (0, 1)
    ]  # fmt: skip
    chosen = select_weights(rows)
    assert chosen["mi"]["on_edge"] == {"alpha": pytest.approx(1 / 3)}
    assert chosen["cmi"]["alpha"] == 3.0 and chosen["cmi"]["on_edge"] == {}
    text = reading_edges({"speech": chosen})
    assert text == (
        "speech mi: alpha = 1 is on the edge of its grid; widen it to 0.333 before trusting "
        "the choice."
    )
    assert reading_edges({"speech": {"mi": {"alpha": 3.0, "on_edge": {}}}}) == (
        "Every choice lies inside its grid."
    )
