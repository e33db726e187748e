"""The I(z; s) instrument: planted ground truth, the window critic, its warm-up and monitor,
what s holds, and the qualification rows (issue 20), on tiny shapes."""

import copy
import math

import numpy as np
import pytest
import torch

from paperlib import config
from paperlib.estimators import instrument
from paperlib.estimators.critics import SetCritic, WindowCritic
from paperlib.evaluation import qualify, s_content
from paperlib.training.regularizers import CMIObjective, grid_of, zs_critic

GRID, DS, DZ = (6, 6), 4, 3


# -- planted ground truth -----------------------------------------------------------------------


def test_planted_data_hits_its_closed_form_and_no_pooled_statistic_carries_it():
    z, s, true = instrument.planted(4000, DZ, DS, GRID, 1.5, "window", window=3, rank=2, seed=0)
    assert true == pytest.approx(1.5, rel=1e-6)
    assert s.shape == (4000, 36, DS)
    # the mean over positions holds no z: its correlation with every z dimension is ~0
    pooled = s.mean(1)
    corr = np.corrcoef(np.concatenate([z, pooled], 1).T)[:DZ, DZ:]
    assert np.abs(corr).max() < 0.06
    # while the first half of the positions alone does
    half = s[:, :18].mean(1)
    corr = np.corrcoef(np.concatenate([z, half], 1).T)[:DZ, DZ:]
    assert np.abs(corr).max() > 0.5
    # the independent case plants nothing
    _, s0, zero = instrument.planted(10, DZ, DS, GRID, 0.0)
    assert zero == 0.0 and s0.shape == (10, 36, DS)


def test_window_sizes_and_patches_follow_the_grid():
    sizes = instrument.window_sizes((4, 5), 3)
    assert sizes.reshape(4, 5)[0, 0] == 4 and sizes.reshape(4, 5)[1, 1] == 9
    assert instrument.window_sizes((1, 6), 5).tolist() == [3, 4, 5, 5, 4, 3]
    s = np.arange(2 * 20 * 1, dtype=np.float32).reshape(2, 20, 1)
    p = instrument.window_patches(s, (4, 5), 3, seed=0)
    assert p.shape == (2, 9 + 2)
    # the sequence target's closed form: rank / 2 log(1 + T / sigma^2)
    assert instrument.planted_mi(1.0, 2, (1, 8), "sequence") == pytest.approx(math.log(9))


# -- the window critic ----------------------------------------------------------------------------


def test_the_window_critic_scores_each_position_from_its_window_only():
    """d T_ii(p) / d s_q = 0 for q outside p's window (checked by gradients), != 0 inside."""
    torch.manual_seed(0)
    critic = WindowCritic(DZ, DS, GRID, hidden=8, window=3, conv_channels=4)
    z = torch.randn(2, DZ)
    s = torch.randn(2, 36, DS, requires_grad=True)
    t = critic.scores(z, s)  # (B, B, P)
    p = 2 * 6 + 3  # row 2, column 3
    t[0, 0, p].backward()
    touched = (s.grad[0].abs().sum(-1) > 0).reshape(6, 6)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[1:4, 2:5] = True
    assert torch.equal(touched, expected)
    assert s.grad[1].abs().sum() == 0  # another item's s never enters T_00


def _fit_window(source, steps=400, seed=0):
    torch.manual_seed(seed)
    critic = WindowCritic(DZ, DS, GRID, hidden=32, window=3)
    sample = instrument.planted_sampler(source)
    instrument.fit_critic(critic, sample, steps=steps, batch_size=64, lr=2e-3, seed=seed)
    return critic


def test_the_window_critic_recovers_planted_window_mi_and_reads_zero_without_it():
    source = instrument.Planted(DZ, DS, GRID, 1.0, "window", window=3, rank=2, seed=1)
    z, s = (torch.as_tensor(a) for a in source.sample(1000, np.random.default_rng(9)))
    got = instrument.critic_reading(_fit_window(source), z, s)
    assert got >= 0.8 * source.true
    # fixed rows sampled with replacement: the same critic memorises nothing here either
    critic = WindowCritic(DZ, DS, GRID, hidden=32, window=3)
    z0, s0, _ = instrument.planted(2000, DZ, DS, GRID, 0.0, seed=2)
    z0, s0 = torch.as_tensor(z0), torch.as_tensor(s0)
    sample = instrument.rows_sampler(z0[:1500], s0[:1500])
    instrument.fit_critic(critic, sample, steps=200, batch_size=64, lr=2e-3)
    assert abs(instrument.critic_reading(critic, z0[1500:], s0[1500:])) <= 0.05


def test_a_window_critic_step_on_random_positions_scores_exactly_those_positions():
    torch.manual_seed(0)
    cfg = config.load(
        "smoke", "images", objective__critic_pairs="window", objective__critic_window=3,
        objective__critic_positions=5,
    )  # fmt: skip
    critic = zs_critic(cfg.objective, DZ, DS, GRID)
    assert critic.train_positions == 5
    z, s = torch.randn(4, DZ), torch.randn(4, 36, DS)
    chosen = torch.tensor([0, 7, 20, 35])
    # the head g at a subset of positions equals the full map's scores there
    assert torch.allclose(critic.scores(z, s, chosen), critic.scores(z, s)[:, :, chosen], atol=1e-5)
    # in training its loss scores a random draw of 5 positions; read in eval mode, all of them
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    assert critic.loss(z, s, g1)[0] != critic.loss(z, s, g2)[0]
    critic.eval()
    assert critic.loss(z, s, g1)[0] == critic.loss(z, s, g2)[0]


def test_the_window_critic_rejects_wrong_shapes():
    critic = WindowCritic(DZ, DS, GRID, hidden=8, window=3)
    with pytest.raises(ValueError, match="grid"):
        critic.mi(torch.randn(2, DZ), torch.randn(2, 35, DS))
    with pytest.raises(ValueError, match="odd"):
        WindowCritic(DZ, DS, GRID, window=4)


@pytest.mark.parametrize("family", ["set", "conv"])
def test_a_critic_fitted_on_few_items_stops_early_and_reads_zero_when_independent(family):
    # 48 items drawn again and again: the critic learns the items, and on new ones its reading
    # falls far below 0 (the monitor's other family read -2.9 nats on a speech run); stopped on
    # 32 other items, it reads about 0
    z, s, _ = instrument.planted(160, 3, 4, (1, 8), 0.0, seed=3)
    z, s = torch.as_tensor(z), torch.as_tensor(s)
    readings = {}
    for stop in (False, True):
        torch.manual_seed(0)
        critic = SetCritic(3, 4, 32) if family == "set" else WindowCritic(3, 4, (1, 8), 32, 0)
        select = (z[48:80], s[48:80]) if stop else None
        sample = instrument.rows_sampler(z[:48], s[:48])
        instrument.fit_critic(critic, sample, 300, batch_size=32, lr=3e-3, select=select)
        readings[stop] = instrument.critic_reading(critic, z[80:], s[80:])
    assert readings[False] < -1.0
    assert abs(readings[True]) < 0.1


def test_the_set_critics_phi_has_the_configured_depth():
    def linears(critic):
        return sum(isinstance(m, torch.nn.Linear) for m in critic.phi)

    assert linears(SetCritic(3, 4, 16, phi_layers=1)) == 1
    assert linears(SetCritic(3, 4, 16)) == 2  # the qualified default
    obj = config.ObjectiveConfig(name="cmi", critic_pairs="set", critic_phi_layers=3)
    assert linears(zs_critic(obj, 3, 4, (1, 8))) == 3
    with pytest.raises(ValueError, match="phi_layers"):
        SetCritic(3, 4, 16, phi_layers=0)


def test_the_patch_critic_scores_a_subset_of_positions_exactly_as_all_of_them():
    torch.manual_seed(0)
    critic = WindowCritic(DZ, DS, GRID, hidden=8, window=3, patch=True, train_positions=5)
    z, s = torch.randn(4, DZ), torch.randn(4, GRID[0] * GRID[1], DS)
    picked = torch.tensor([0, 7, 12, 3])
    full = critic.scores(z, s)
    assert torch.allclose(critic.scores(z, s, picked), full[:, :, picked], atol=1e-5)
    # a one-row grid (speech's frames), edge positions included, with a wider window
    line = WindowCritic(DZ, DS, (1, 9), hidden=8, window=5, patch=True)
    s1, edges = torch.randn(4, 9, DS), torch.tensor([0, 8, 1, 4])
    assert torch.allclose(line.scores(z, s1, edges), line.scores(z, s1)[:, :, edges], atol=1e-5)
    # training mode draws train_positions of them per step; eval mode scores every position
    gen = torch.Generator().manual_seed(0)
    critic.train()
    loss, _ = critic.loss(z, s, gen)
    loss.backward()
    assert critic.conv[0].weight.grad is not None
    # the pooled (sequence) target has no positions to draw
    with pytest.raises(ValueError, match="train_positions"):
        WindowCritic(DZ, DS, GRID, window=0, train_positions=5)


def test_the_pooled_second_family_is_as_wide_as_the_set_critic_it_checks():
    def channels(critic):
        return {m.out_channels for m in critic.conv if isinstance(m, torch.nn.Conv2d)}

    # pooled: a mean of `hidden` channels, as the set critic pools `hidden` features
    other = instrument.other_critic("set", 3, 4, (1, 8), hidden=24)
    assert channels(other) == {24}
    # per window the training critic stays narrow (it runs at every model step)
    obj = config.ObjectiveConfig(name="cmi", critic_pairs="window", critic_hidden=24)
    assert channels(zs_critic(obj, 3, 4, (6, 6))) == {32}


def test_the_evaluation_budget_is_the_qualified_one_in_quick_and_small_in_smoke():
    for pairs, steps in (("set", 1500), ("window", 2400)):
        assert instrument.evaluation_budget(pairs, 300)["steps"] == steps  # quick
        assert instrument.evaluation_budget(pairs, 5000)["steps"] == steps  # paper
        assert instrument.evaluation_budget(pairs, 20)["steps"] == 160  # smoke
        assert instrument.evaluation_budget(pairs, 300)["batch_size"] == 128
    for experiment in ("speech", "images"):
        cfg = config.load("quick", experiment)
        got = instrument.evaluation_budget(
            cfg.objective.critic_pairs, cfg.eval.posthoc_critic_steps
        )
        assert got == instrument.EVALUATION[qualify.target_of(cfg.objective)]


def test_agreement_is_a_ratio_with_a_floor():
    assert instrument.agreement(1.0, 2.0) == pytest.approx(2.0)
    assert instrument.agreement(0.01, 0.04) == pytest.approx(1.0)  # both below 0.05 nats
    assert instrument.agreement(-1.0, 0.5) == pytest.approx(10.0)


# -- the objective: warm-up on the critic's plateau, beta ramp, monitor ---------------------------


class _Model(torch.nn.Module):
    z_dim, s_dim, x_shape = DZ, DS, (1, *GRID)

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)


def _cmi(**over):
    cfg = config.load("smoke", "images").objective
    cfg = cfg.__class__(
        **{**cfg.__dict__, "name": "cmi", "alpha": 1.0, "beta": 2.0, "critic_pairs": "window",
           "critic_window": 3, "critic_hidden": 8, **over}
    )  # fmt: skip
    return CMIObjective(cfg, _Model(), seed=0)


def test_beta_waits_for_the_critics_plateau_then_ramps_in():
    obj = _cmi(warmup_steps=2, warmup_plateau=3, warmup_max_steps=50, beta_ramp_steps=4)
    assert grid_of(_Model()) == GRID and obj.target == "window"
    # the held-out accuracy keeps rising until step 5, then stays flat
    for step, acc in enumerate([0.55, 0.6, 0.65, 0.7, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]):
        obj._step = step
        obj.acc_ema = acc - 0.01  # the EMA update below lands on `acc`
        obj.ACC_EMA = 1.0
        if acc > obj.acc_best + obj.ACC_MIN_GAIN:
            obj.acc_best, obj.acc_best_step = acc, step
        obj._maybe_start_beta(step + 1)
    # the last gain came at step 4; three steps later (7 done) beta starts
    assert obj.beta_start == 7
    assert obj.beta_at(6) == 0.0
    assert [obj.beta_at(t) for t in (7, 8, 9, 10, 20)] == [0.5, 1.0, 1.5, 2.0, 2.0]
    # the state survives a checkpoint round trip
    fresh = _cmi(warmup_steps=2, warmup_plateau=3, warmup_max_steps=50, beta_ramp_steps=4)
    fresh.load_state_dict(obj.state_dict())
    assert fresh.beta_start == 7 and fresh.acc_best_step == 4


def test_the_warmup_is_capped_and_the_fixed_warmup_is_unchanged():
    obj = _cmi(warmup_steps=2, warmup_plateau=100, warmup_max_steps=5)
    obj.acc_best_step = 4
    obj._maybe_start_beta(4)
    assert obj.beta_start is None
    obj._maybe_start_beta(5)
    assert obj.beta_start == 5
    fixed = _cmi(warmup_steps=3, warmup_plateau=0)
    assert fixed.beta_at(2) == 0.0 and fixed.beta_at(3) == 2.0


def test_the_monitor_reads_both_families_on_its_schedule(monkeypatch):
    monkeypatch.setattr(instrument, "MONITOR", {"window": dict(steps=20)})
    obj = _cmi(monitor_every=4)

    class Model(_Model):
        def forward(self, x):
            from paperlib.outputs import VAEOutput

            b = len(x)
            z = x[:, :DZ]
            s = x[:, DZ:].reshape(b, 36, DS)
            zero = torch.zeros(b)
            return VAEOutput(z, z, z, s, zero, zero, zero)

    x = torch.randn(64, DZ + 36 * DS)
    assert obj.monitor(Model(), x, 3) == {}
    got = obj.monitor(Model(), x, 4)
    assert set(got) == {"mi_zs_val_critic", "mi_zs_val_other", "monitor_ratio"}
    assert got["monitor_ratio"] >= 1.0
    assert obj.monitor(Model(), x, 5, final=True) != {}
    # with training items, the fresh critic fits there with evaluation's budget and both
    # critics read all the validation rows; without, it fits on validation rows (MONITOR)
    seen = {}

    def fit_other(**kw):
        seen.update(steps=kw["steps"])
        return "critic"

    def read_other(critic, z, s, seed=0):
        seen.update(rows=len(z))
        return {"nats": 0.5}

    monkeypatch.setattr(instrument, "fit_other", fit_other)
    monkeypatch.setattr(instrument, "read_other", read_other)
    monkeypatch.setattr(instrument, "EVALUATION", {"window": dict(steps=30, batch_size=16)})
    obj.monitor(Model(), x, 8, x_fit=torch.randn(40, DZ + 36 * DS))
    assert seen == {"rows": 64, "steps": 30}
    obj.monitor(Model(), x, 12)
    assert seen == {"rows": 32, "steps": 20}
    # the field names a run's folder only where it is set (finished runs keep their names)
    cfg = config.load("smoke", "speech", objective__name="cmi")
    assert "monitor_fit_items" not in cfg.identity()["objective"]
    fit = dict(objective__monitor_every=5, objective__monitor_fit_items=100)
    assert cfg.identity() != config.load("smoke", "speech", objective__name="cmi", **fit).identity()
    mi = config.load("smoke", "speech", objective__name="mi", objective__monitor_every=5)
    assert mi.identity() == config.load("smoke", "speech", objective__name="mi", **fit).identity()


class _PlantedEncoder(_Model):
    """x = [z, s flattened]: an "encoder" whose s holds z wherever x puts it."""

    def forward(self, x):
        from paperlib.outputs import VAEOutput

        b = len(x)
        z, s = x[:, :DZ], x[:, DZ:].reshape(b, 36, DS)
        zero = torch.zeros(b)
        return VAEOutput(z, z, z, s, zero, zero, zero)


def test_a_catch_up_burst_trains_the_critic_on_the_current_encoder_after_the_monitor_reads_it():
    from paperlib.training import train

    obj = _cmi(
        critic_refresh_every=4, critic_refresh_steps=300, critic_lr=2e-3, critic_hidden=32,
        monitor_every=4,
    )  # fmt: skip
    source = instrument.Planted(DZ, DS, GRID, 1.0, "window", window=3, rank=2, seed=1)
    z, s = (torch.as_tensor(a) for a in source.sample(1000, np.random.default_rng(0)))
    zv, sv = (torch.as_tensor(a) for a in source.sample(300, np.random.default_rng(1)))
    x = torch.cat([z, s.flatten(1)], 1)
    model = _PlantedEncoder()
    obj._rows_per_update = 64
    assert obj.refresh(model, 3, x) == {}  # off schedule
    with pytest.raises(ValueError, match="monitor_fit_items"):
        obj.refresh(model, 4, None)
    held = (zv, sv, 64)
    before = instrument.select_loss(obj.critics["zs"], *held)
    twin = copy.deepcopy(obj)
    x_read = torch.cat([zv, sv.flatten(1)], 1)
    logs = obj.refresh(model, 4, x, x_read=x_read)
    assert set(logs) == {"critic_refresh_acc", "critic_lag_before", "critic_lag_after"}
    assert logs["critic_refresh_acc"] > 0.55
    # the lag read-out: an untrained critic reads ~0 of the planted nat, the caught-up one most
    assert abs(logs["critic_lag_before"]) < 0.2 and logs["critic_lag_after"] >= 0.6
    # ... and it is only a read-out: without it the burst leaves the same critic
    assert set(twin.refresh(model, 4, x)) == {"critic_refresh_acc"}
    for a, b in zip(obj.critics["zs"].parameters(), twin.critics["zs"].parameters()):
        assert torch.equal(a, b)
    # the burst learnt the dependence: its held-out loss fell, and it reads most of a planted nat
    assert instrument.select_loss(obj.critics["zs"], *held) < before - 0.05
    assert instrument.critic_reading(obj.critics["zs"], zv, sv) >= 0.6
    # the trainer: the monitor reads the critic first, then the burst moves it
    order = []
    obj.monitor = lambda *a, **kw: order.append("monitor") or {}
    obj.refresh = lambda *a, **kw: order.append("refresh") or {}

    class Best:
        plateaued = False

        def update(self, *a):
            return {}

    best = Best()
    best.x, best.x_fit = x[:8], x
    tc = config.load("smoke", "images").train
    train._validate(model, obj, best, 4, tc, torch.device("cpu"), {})
    assert order == ["monitor", "refresh"]


# -- what s holds ---------------------------------------------------------------------------------


def test_a_pixelcnn_s_holds_x_as_a_whole_but_one_position_does_not():
    from paperlib.data import load_data
    from paperlib.models import build_model

    cfg = config.load("smoke", "images")
    bundle = load_data(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, bundle.info)
    tr = s_content.encode(model, bundle.train, 200)
    te = s_content.encode(model, bundle.val, 100)
    table = s_content.what_s_holds(tr, te, window=3)
    assert table["s_1:T"]["x"] > 0.9  # s_{t+1} sees x_t: the sequence is x again
    assert table["s_t"]["x"] < 0.2
    assert table["window"]["x_t"] > table["s_t"]["x_t"]
    md = s_content.format_table({"random init": table})
    assert md.count("\n") == 1 + 4


def test_choose_target_is_window_only_when_s_is_x_again():
    table = {"s_1:T": {"x": 0.97, "label": 0.88}, "raw x": {"label": 0.84}}
    assert s_content.choose_target(table) == "window"
    table["s_1:T"]["label"] = 0.07  # holds the frames, not the speaker: not x again
    assert s_content.choose_target(table) == "sequence"
    table["s_1:T"].update(x=0.5, label=0.88)
    assert s_content.choose_target(table) == "sequence"


# -- qualification rows ---------------------------------------------------------------------------


def test_qualification_rows_on_a_small_shape():
    cfg = config.load("smoke", "images").replace(
        objective__critic_pairs="window", objective__critic_window=3, objective__critic_hidden=32,
        objective__critic_lr=2e-3, data__batch_size=64, train__steps=400,
    )  # fmt: skip
    row = qualify.planted_row(cfg, DZ, DS, GRID, 1.0, n=1000, other=False, seed=1)
    assert row["case"] == "planted" and row["passed"], row
    # the other family alone (--other-only): no training critic, the pass rule on the other
    row = qualify.planted_row(cfg, DZ, DS, GRID, 0.0, n=200, steps=60, critic=False, seed=1)
    assert "critic_nats" not in row and row["case"] == "independent"
    assert row["passed"] == (abs(row["other_nats"]) <= qualify.MAX_INDEPENDENT)
    assert isinstance(zs_critic(cfg.objective, DZ, DS, GRID), WindowCritic)

    class Encoder(_Model):  # a frozen "encoder" whose s holds z in its first positions
        def forward(self, x):
            from paperlib.outputs import VAEOutput

            z = x[:, :DZ] + 0.1 * torch.randn(len(x), DZ)
            s = torch.zeros(len(x), 36, DS)
            s[:, :4, :DZ] = x[:, None, :DZ]
            zero = torch.zeros(len(x))
            return VAEOutput(z, z, z, s, zero, zero, zero)

    x = torch.randn(700, DZ)
    frozen = qualify.frozen_row(cfg, Encoder(), x[:500], x[500:], GRID, steps=30, seed=0)
    assert {"critic_nats", "other_nats", "gap", "passed"} <= set(frozen)
    assert "| images |" not in qualify.format_rows([frozen])  # no model tag given
    # a frozen row that names its encoder says so in the case column
    named = qualify.format_rows([{**frozen, "frozen": "cmi seed 101"}])
    assert "| frozen (cmi seed 101) |" in named and "| frozen |" in qualify.format_rows([frozen])


def test_a_live_row_reads_the_runs_last_monitor_and_passes_within_the_monitor_ratio():
    from paperlib.training.train import History

    rows = [
        {"step": 100, "critic_acc_zs_heldout": 0.70, "beta_start": -1.0},
        {"step": 120, "critic_acc_zs_heldout": 0.74, "beta_start": 120.0},
        {"step": 300, "mi_zs_val_critic": 0.5, "mi_zs_val_other": 1.0, "monitor_ratio": 2.0},
        {"step": 600, "mi_zs_val_critic": 0.9, "mi_zs_val_other": 1.2, "monitor_ratio": 1.33},
    ]
    row = qualify.live_row(History(steps=600, rows=rows))
    assert (row["step"], row["beta_start"], row["critic_acc"]) == (600, 120, 0.74)
    assert row["passed"] and row["gap"] == 1.33
    # the earlier, wider disagreement alone fails the 1.5x rule
    assert not qualify.live_row(History(steps=300, rows=rows[:3]))["passed"]
    assert "| live (cmi seed 0, step 600: 1.33x) |" in qualify.format_rows(
        [{**row, "run": "cmi seed 0"}]
    )
    with pytest.raises(ValueError, match="monitor_every"):
        qualify.live_row(History(steps=120, rows=rows[:2]))


def test_the_other_family_is_as_wide_as_the_training_critic(monkeypatch):
    seen = {}
    monkeypatch.setattr(instrument, "other_reading", lambda *a, **kw: seen.update(kw) or {})
    for profile, width in (("smoke", 16), ("quick", 128), ("paper", 256)):
        cfg = config.load(profile, "images")
        qualify.other_row(cfg, None, None, None, (2, 2))
        assert seen["hidden"] == cfg.objective.critic_hidden == width, profile


def test_with_n_critic_0_the_critic_trains_only_in_its_bursts():
    obj = _cmi(n_critic=0, critic_refresh_every=4, critic_hidden=16)
    before = [p.detach().clone() for p in obj.critics["zs"].parameters()]
    x = torch.randn(16, DZ + 36 * DS)
    logs = obj.critic_step(_PlantedEncoder()(x))
    # the step reads the batch held out (the warm-up's accuracy) and leaves the critic as it was
    assert "critic_acc_zs" in logs and obj.first_critic_logs.items() <= logs.items()
    for a, b in zip(before, obj.critics["zs"].parameters()):
        assert torch.equal(a, b)
    # a run with no bursts would never train it: the config says so
    with pytest.raises(ValueError, match=r"n_critic=0 .*critic_refresh_every > 0"):
        config.load("quick", "images", objective__n_critic=0, objective__critic_refresh_every=0)
    assert config.load("quick", "images", objective__n_critic=0).objective.n_critic == 0


def test_the_hinge_penalty_gives_no_reward_below_zero_and_logs_the_estimate():
    obj = _cmi(zs_penalty="hinge", warmup_steps=0, beta_ramp_steps=0)
    model = _PlantedEncoder()
    x = torch.randn(16, DZ + 36 * DS, requires_grad=True)
    out = model(x)
    rows = obj.critics["zs"].rows(out.z, out.s).detach()
    loss, logs = obj.model_loss(out, step=0)
    # the logged estimate is the plain mean; the penalty the hinge of each pair
    assert logs["mi_zs"] == pytest.approx(float(rows.mean()), abs=1e-5)
    assert logs["zs_penalty"] == pytest.approx(float(rows.clamp_min(0).mean()), abs=1e-5)
    # a pair the critic scores below 0 gets no gradient from the penalty; one above 0 does
    plain = _cmi(zs_penalty="estimate", warmup_steps=0, beta_ramp_steps=0)
    plain.load_state_dict(obj.state_dict())
    for o in (obj, plain):
        o.cfg = o.cfg.__class__(**{**o.cfg.__dict__, "alpha": 0.0})
    (g_hinge,) = torch.autograd.grad(obj.model_loss(model(x), 0)[0], x)
    (g_plain,) = torch.autograd.grad(plain.model_loss(model(x), 0)[0], x)
    below, above = rows < 0, rows > 0
    assert below.any() and above.any()
    # the ELBO's gradient is the same in both: the difference is the penalty's on the pairs below 0
    diff = (g_hinge - g_plain).abs().sum(1)
    assert torch.all(diff[above] < 1e-6) and torch.all(diff[below] > 0)
    with pytest.raises(ValueError, match="zs_penalty='hinge'"):
        from paperlib.training.regularizers import CMIClubObjective

        cfg = obj.cfg.__class__(**{**obj.cfg.__dict__, "name": "cmi_club", "critic_pairs": "set"})
        CMIClubObjective(cfg, _Model(), seed=0)


def test_evaluation_reads_the_last_monitors_critic_instead_of_fitting_a_second(
    cmi_run_with_last_monitor, monkeypatch
):
    """The run's last monitor fits the other family exactly as evaluation would (training
    items, evaluation's budget, early stopping on a fifth): evaluation reads that critic, saved
    beside the checkpoints, and fits its own only when the fits differ or the weights do."""
    from paperlib.studies import experiment, run_metrics
    from paperlib.training import train

    cfg, bundle, model, history, run = cmi_run_with_last_monitor
    assert (run / "checkpoints" / train.OTHER_FAMILY_FILE).exists()
    assert history.best_step == 6 and history.other_family["step"] == 6
    # a finished run read back from its folder finds it again
    model, obj, history = experiment.train_run(cfg, bundle, run_dir=run)
    saved = history.other_family
    assert saved is not None and saved["items"] == min(2000, len(bundle.train))
    classifiers = experiment.fit_classifiers(cfg, bundle)

    fits = []
    real_fit = instrument.fit_other
    monkeypatch.setattr(instrument, "fit_other", lambda **kw: fits.append(kw) or real_fit(**kw))
    m, _ = experiment.evaluate_run(model, cfg, bundle, classifiers, other=saved)
    assert fits == [] and m["mi_zs_target_from_monitor"] == 1.0
    assert math.isfinite(m["mi_zs_target_nats"])
    # without a saved critic evaluation fits its own, as the monitor fitted that one
    m2, _ = experiment.evaluate_run(model, cfg, bundle, classifiers, other=None)
    assert m2["mi_zs_target_from_monitor"] == 0.0 and len(fits) == 1
    assert fits[0] == {
        **saved["fit"],
        **{k: fits[0][k] for k in ("sample", "z_dim", "s_dim", "seed", "select")},
    }
    # fitted on other items or with another budget: not the critic evaluation would fit
    fit, items = fits[0], saved["items"]
    fit = {k: v for k, v in fit.items() if k in saved["fit"]}
    assert run_metrics._fitted_alike(saved, fit, items)
    assert not run_metrics._fitted_alike(saved, fit, items - 1)
    assert not run_metrics._fitted_alike(saved, {**fit, "steps": 41}, items)
    # weights of another step than the monitor's: the saved critic is not offered
    assert train.saved_other_family(run / "checkpoints", train.History(steps=3)) is None
