"""fit(): exact resume after a kill, NaN guard with the last good checkpoint intact, history."""

import copy

import pytest
import torch

from paperlib.config import load
from paperlib.data import make_loaders
from paperlib.models import build_model
from paperlib.records import HistoryWriter, load_checkpoint
from paperlib.training.regularizers import build_objective
from paperlib.training.train import fit


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _run(run_dir, *, callbacks=None, model_hook=None, **overrides):
    cfg = load("smoke", "toy", **overrides)
    loaders = make_loaders(cfg.data, seed=cfg.train.seed)
    torch.manual_seed(123)
    model = build_model(cfg.model, loaders["info"])
    if model_hook is not None:
        model_hook(model)
    obj = build_objective(cfg.objective, model)
    return model, obj, fit(model, obj, loaders, cfg, run_dir, callbacks=callbacks)


class Killed(Exception):
    pass


@pytest.mark.parametrize("replay", [0, 2])
def test_resume_after_kill_is_exact(tmp_path, replay):
    kw = dict(
        objective__critic_replay=replay,  # the critics' replay buffer rides in the checkpoint
        # bit-exact only at one thread count: on a busy machine `fit` would take fewer threads,
        # and a different split of a reduction changes the last bits
        train__num_threads=1,
        objective__name="cmi",
        objective__alpha=2.0,
        objective__beta=1.0,
        objective__mi_xz="density_ratio",
        train__steps=40,  # crosses an epoch boundary? no: 64 batches per epoch; position matters
        train__checkpoint_every=10,
        data__max_items=640,  # 10 batches per epoch, so the run crosses epoch boundaries
    )
    straight, obj_a, hist_a = _run(tmp_path / "a", **kw)

    def kill(step, **_):
        if step == 23:  # after the checkpoint at step 20, mid-epoch
            raise Killed

    with pytest.raises(Killed):
        _run(tmp_path / "b", callbacks=[kill], **kw)
    resumed, obj_b, hist_b = _run(tmp_path / "b", **kw)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(obj_a.parameters(), obj_b.parameters()):
        assert torch.equal(a, b)
    assert hist_a.final == hist_b.final
    # keep last 2 checkpoints; history has no duplicated steps after the resume
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("step_*.pt")) == [
        "step_0000030.pt",
        "step_0000040.pt",
    ]
    rows = HistoryWriter.read(tmp_path / "b" / "history.csv")
    pairs = [(r["step"], r["key"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    assert [r["step"] for r in hist_b.rows] == [r["step"] for r in hist_a.rows]


def test_corrupted_checkpoint_is_skipped_with_warning(tmp_path):
    kw = dict(train__steps=20, train__checkpoint_every=10)
    _run(tmp_path, **kw)
    (tmp_path / "checkpoints" / "step_0000020.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="step_0000020.pt"):
        _, _, hist = _run(tmp_path, **kw)
    assert hist.steps == 20


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    bad_call = 13  # forward calls 1..12 are fine; checkpoint at step 10

    def hook(model):
        calls = {"n": 0}
        forward = model.forward

        def poisoned(x, *a, **k):
            calls["n"] += 1
            out = forward(x, *a, **k)
            if calls["n"] >= bad_call:
                out.log_px = out.log_px * float("nan")
            return out

        model.forward = poisoned

    with pytest.raises(FloatingPointError, match=r"'log_px'.*step 12"):
        _run(tmp_path, model_hook=hook, train__steps=30, train__checkpoint_every=10)
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt"))
    assert ckpts == ["step_0000010.pt"]
    payload = load_checkpoint(tmp_path / "checkpoints" / "step_0000010.pt")
    assert all(torch.isfinite(v).all() for v in payload["model"].values())


def test_validation_steps_are_logged_off_the_log_grid(tmp_path):
    _, _, hist = _run(
        tmp_path, objective__name="mi", objective__alpha=1.0, train__steps=10,
        train__eval_every=3, train__log_every=5,
    )  # fmt: skip
    assert [r["step"] for r in hist.rows] == [3, 5, 6, 9, 10]
    assert [r["step"] for r in hist.rows if "val_elbo" in r] == [3, 6, 9, 10]


def test_history_and_progress_terms(tmp_path):
    _, _, hist = _run(tmp_path, objective__name="mi", objective__alpha=1.0, train__steps=10)
    assert [r["step"] for r in hist.rows] == [5, 10]
    assert {"loss", "elbo", "kl_z", "mi_xz"} <= set(hist.final)
    assert hist.checkpoint is not None and hist.checkpoint.name == "step_0000010.pt"
    assert (tmp_path / "history.csv").exists()
    assert hist.train_seconds > 0


def test_training_time_survives_a_resume(tmp_path):
    """A finished run that is resumed reports the time it trained, not the ~0 s of the no-op call."""
    first = _run(tmp_path)[2]
    again = _run(tmp_path)[2]
    assert first.train_seconds > 0
    assert again.train_seconds == pytest.approx(first.train_seconds, rel=0.5)


def _val_elbo(model, loaders, cfg):
    from paperlib.training.train import _BestOnValidation

    return _BestOnValidation(loaders, cfg.train, torch.device("cpu"), None).elbo(model)


def test_fit_keeps_the_best_validation_weights_and_stops_on_a_plateau(tmp_path):
    # lr 0.05 on the toy makes the validation ELBO overshoot and wobble: a plateau comes early
    kw = dict(train__steps=200, train__eval_every=5, train__patience=3, train__lr=0.05)
    model, _, hist = _run(tmp_path, **kw)
    assert hist.best_step is not None and hist.best_step % 5 == 0
    cfg = load("smoke", "toy", **kw)
    loaders = make_loaders(cfg.data, seed=cfg.train.seed)
    # the returned model holds the best weights: its validation ELBO is the recorded best
    assert _val_elbo(model, loaders, cfg) == pytest.approx(hist.best_val_elbo, abs=1e-4)
    vals = [r["val_elbo"] for r in hist.rows if "val_elbo" in r]
    assert max(vals) == pytest.approx(hist.best_val_elbo, abs=1e-4)
    if hist.stopped_early:
        assert hist.steps < 200 and hist.steps - hist.best_step == 3 * 5
    # a rerun resumes the stopped run: no further step, the same best weights
    model2, _, hist2 = _run(tmp_path, **kw)
    assert hist2.steps == hist.steps and hist2.best_step == hist.best_step
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)


def _same(a, b) -> bool:
    """Two state dicts (tensors, and nested extra state) hold equal values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_the_critic_leaves_fit_from_the_step_of_the_best_weights(tmp_path):
    # the training critic is read against the encoder it was trained with: when the best
    # validation step precedes the last, fit() returns the critic of that step, and a rerun
    # (resumed from best.pt) returns the same one
    kw = dict(objective__name="cmi", train__steps=60, train__eval_every=5, train__lr=0.05)
    at: dict[int, dict[str, torch.Tensor]] = {}

    def keep(step, objective, **_):
        at[step] = copy.deepcopy(objective.state_dict())

    _, obj, hist = _run(tmp_path, callbacks=[keep], **kw)
    assert hist.best_step is not None and hist.critic_at_best
    if hist.best_step == hist.steps:
        pytest.skip("this toy run peaked at its last step: nothing to tell apart")
    best, last = at[hist.best_step], at[hist.steps]
    assert not _same(best, last), "the critic moved after the best step"
    assert _same(obj.state_dict(), best)
    _, obj2, hist2 = _run(tmp_path, **kw)
    assert hist2.best_step == hist.best_step
    assert _same(obj2.state_dict(), best)


def test_a_best_checkpoint_without_critics_withholds_the_critic_from_evaluation(tmp_path):
    from paperlib.studies.experiment import training_critic

    kw = dict(objective__name="cmi", train__steps=60, train__eval_every=5, train__lr=0.05)
    _, obj, hist = _run(tmp_path, **kw)
    if hist.best_step == hist.steps:
        pytest.skip("this toy run peaked at its last step: nothing to tell apart")
    assert training_critic(obj, hist) is not None
    # a best.pt written before the critics were stored with it (older runs)
    best = tmp_path / "checkpoints" / "best.pt"
    payload = load_checkpoint(best)
    payload.pop("objective")
    torch.save(payload, best)
    _, obj2, hist2 = _run(tmp_path, **kw)
    assert not hist2.critic_at_best and training_critic(obj2, hist2) is None


def test_eval_every_without_a_validation_split_names_the_fix(tmp_path):
    cfg = load("smoke", "toy", train__eval_every=5)
    loaders = make_loaders(cfg.data, seed=0)
    loaders = {k: v for k, v in loaders.items() if k != "val"}
    model = build_model(cfg.model, loaders["info"])
    with pytest.raises(ValueError, match="train.eval_every"):
        fit(model, build_objective(cfg.objective, model), loaders, cfg)


def test_bf16_autocast_is_opt_in_and_agrees_with_fp32_within_the_seeds_spread(tmp_path):
    import contextlib
    import statistics

    from paperlib.runtime import has_amx

    def run(precision, seed):
        dtypes = set()

        def hook(model):
            first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
            first.register_forward_hook(lambda mod, i, out: dtypes.add(out.dtype))

        slow = precision == "bf16" and not has_amx()
        warns = pytest.warns(UserWarning, match="without AMX") if slow else contextlib.nullcontext()
        with warns:
            _, _, hist = _run(
                None, model_hook=hook, train__precision=precision, train__seed=seed,
                train__steps=100, objective__name="mi", objective__alpha=1.0,
            )  # fmt: skip
        return hist.final["elbo"], dtypes

    fp32 = [run("fp32", s) for s in (0, 1, 2)]
    bf16 = [run("bf16", s) for s in (0, 1, 2)]
    assert all(d == {torch.float32} for _, d in fp32)  # the default computes in fp32
    assert all(d == {torch.bfloat16} for _, d in bf16)
    spread = statistics.stdev(e for e, _ in fp32)
    assert spread > 0
    mean_gap = statistics.mean(e for e, _ in bf16) - statistics.mean(e for e, _ in fp32)
    assert abs(mean_gap) <= spread
    for (a, _), (b, _) in zip(fp32, bf16):
        assert abs(a - b) <= spread  # each seed, too


def test_bf16_where_a_layer_has_no_bf16_kernel_names_the_setting(tmp_path):
    """The DSAE's LSTM in bf16 needs AVX-512 bf16 or AMX on a CPU: there it trains; elsewhere
    oneDNN's bare 'could not create a primitive descriptor' becomes an error that says what to
    set instead."""
    import warnings

    cfg = load("smoke", "speech", train__precision="bf16", train__steps=2)
    loaders = make_loaders(cfg.data, seed=0)
    model = build_model(cfg.model, loaders["info"])
    obj = build_objective(cfg.objective, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the no-AMX warning
        try:
            fit(model, obj, loaders, cfg, None)
        except RuntimeError as e:
            assert "train.precision='fp32'" in str(e) and "bf16" in str(e)


def test_a_checkpoint_from_before_a_field_existed_resumes_where_the_run_never_reads_it(tmp_path):
    """A field added later (paperlib.config.ADDED_LATER) keeps finished runs resumable: their
    checkpoints lack it, and where the run does not read it the check ignores it. Where the run
    does read it, the run is another run and the checkpoint is refused."""
    kw = dict(train__steps=10, train__checkpoint_every=5, objective__name="mi")
    _run(tmp_path / "run", **kw)  # elbo-family run: no set critic trains
    ckpt = sorted((tmp_path / "run" / "checkpoints").glob("step_*.pt"))[-1]
    payload = torch.load(ckpt, weights_only=True)
    payload["config"]["objective"].pop("critic_phi_layers")  # as written before the field
    payload["config"]["train"].pop("precision")
    torch.save(payload, ckpt)
    *_, hist = _run(tmp_path / "run", **dict(kw, train__steps=12))
    assert hist.steps == 12  # resumed from step 10, not refused
    payload["config"]["objective"]["name"] = "cmi"  # a cmi run reads the set critic's depth
    torch.save(payload, ckpt)
    with pytest.raises(ValueError, match="different 'objective' config"):
        _run(tmp_path / "run", **dict(kw, objective__name="cmi", train__steps=14))


def test_a_run_counts_as_trained_only_on_its_plateau_or_under_one_percent_gain():
    from paperlib.training.train import History

    def history(vals, stopped=False):
        rows = [{"step": 10 * (i + 1), "val_elbo": v} for i, v in enumerate(vals)]
        return History(rows=rows, steps=10 * len(vals), stopped_early=stopped)

    # still improving: -100 -> -90 over the last fifth (steps 80-100), 10 % better
    climbing = history([-200, -180, -160, -140, -120, -110, -105, -100, -95, -90])
    assert climbing.val_elbo_gain() == pytest.approx(0.10)
    assert not climbing.trained()
    # flat at the end: 0.5 % over the last fifth
    flat = history([-200, -150, -120, -110, -105, -102, -101, -100, -99.8, -99.5])
    assert flat.val_elbo_gain() == pytest.approx(0.005)
    assert flat.trained()
    # stopped on its plateau: trained whatever the numbers; no validation ELBO: not trained
    assert history([-200, -100], stopped=True).trained()
    assert not History(rows=[{"step": 10, "loss": 1.0}], steps=10).trained()
