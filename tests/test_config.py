"""Config validation: good values load, every kind of bad value names its key."""

import dataclasses
from pathlib import Path

import pytest

from paperlib import config


@pytest.mark.parametrize(("profile", "experiment"), config.presets())
def test_every_preset_loads_and_round_trips(profile, experiment):
    cfg = config.load(profile, experiment)
    assert cfg.profile == profile and cfg.experiment == experiment
    assert config.Config.from_dict(cfg.to_dict()) == cfg


def test_overrides_apply_in_both_spellings():
    a = config.load("smoke", "speech", train__steps=7, objective__beta=2)
    b = config.load("smoke", "speech", train={"steps": 7}, objective={"beta": 2.0})
    assert a == b and a.train.steps == 7 and a.objective.beta == 2.0
    assert isinstance(a.objective.beta, float)  # ints accepted for floats, stored as float


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"train__stepz": 3}, ["train.stepz", "steps"]),
        ({"objective__beta": -1.0}, ["objective.beta", "[0.0, 100.0]"]),
        ({"train__steps": "many"}, ["train.steps", "int"]),
        ({"train__steps": True}, ["train.steps", "int"]),
        ({"data__name": 3}, ["data.name", "str"]),
        ({"model__posterior": "mean-field"}, ["model.posterior", "factorized"]),
        ({"train__lr": 0.0}, ["train.lr", "(0.0"]),
        ({"optim__lr": 1.0}, ["optim", "train"]),
        ({"steps": 1}, ["steps", "block__key"]),
    ],
)
def test_bad_values_name_the_key_and_what_is_accepted(overrides, names):
    with pytest.raises(ValueError) as err:
        config.load("smoke", "speech", **overrides)
    for name in names:
        assert name in str(err.value)


def test_an_unknown_component_name_is_refused_at_use_naming_the_key(tmp_path):
    from paperlib.data import load_data

    cfg = config.load("smoke", "speech", data__name="imagenet")  # config checks types only
    with pytest.raises(ValueError, match=r"data.name 'imagenet' is not registered.*mnist5k"):
        load_data(cfg.data)


def test_config_imports_only_the_presets_data_and_no_torch():
    import subprocess
    import sys

    code = "import sys, paperlib.config; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(out.stdout)  # a printed list of module names
    ours = [m for m in loaded if m.startswith("paperlib.")]
    assert ours == ["paperlib.config", "paperlib.presets", *sorted(_PRESET_MODULES)]
    assert "torch" not in loaded


_PRESET_MODULES = {
    f"paperlib.presets.{m}" for m in ("images", "mechanism", "speech", "sweep", "toy")
}


def test_presets_are_plain_data_one_module_per_experiment():
    """Every experiment has its module with SMOKE / QUICK / PAPER, each of which validates as a
    Config; the preset modules import nothing (the package imports only them)."""
    import ast

    from paperlib import presets

    assert set(presets.EXPERIMENTS) == set(config.EXPERIMENTS)
    for name, module in presets.EXPERIMENTS.items():
        for profile in config.PROFILES:
            blocks = getattr(module, profile.upper())
            cfg = config.Config.from_dict({"profile": profile, "experiment": name, **blocks})
            assert cfg.profile == profile
    assert set(presets.PRESETS) == {(p, e) for p in config.PROFILES for e in config.EXPERIMENTS}
    folder = Path(presets.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        allowed = {"__future__", "types", "typing", "paperlib.presets"}
        names = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in imports}
        assert names <= (allowed if path.name == "__init__.py" else set()), (path.name, names)


def test_load_reads_the_presets_package(monkeypatch):
    from paperlib import presets

    for profile, experiment in config.presets():
        blocks = presets.PRESETS[(profile, experiment)]
        expected = config.Config.from_dict({"profile": profile, "experiment": experiment, **blocks})
        assert config.load(profile, experiment) == expected
    # a changed preset value is what load returns (no copy of the table elsewhere)
    changed = {**presets.speech.SMOKE, "train": {**presets.speech.SMOKE["train"], "steps": 9}}
    monkeypatch.setitem(presets.PRESETS, ("smoke", "speech"), changed)
    assert config.load("smoke", "speech").train.steps == 9


def test_notebook_defaults_come_from_the_presets():
    """What ``None`` parameters resolve to (paperlib.suite.params) and the walkthrough's shrink
    (paperlib.suite.plan) are the values of paperlib.presets."""
    from paperlib import presets
    from paperlib.suite import params, plan

    for profile in config.PROFILES:
        spec = params.SPECS
        assert (
            spec["01_speech_dsae"]["seeds"].defaults[profile]
            == (presets.sweep.SPEECH_REPORTED_SEEDS[profile])
        )
        assert (
            spec["03_information_plane"]["alphas"].defaults[profile]
            == (presets.sweep.ALPHAS[profile])
        )
        for name, defaults in presets.mechanism.NOTEBOOK.items():
            assert spec["05_mechanism"][name].defaults[profile] == defaults[profile]
    walk = plan.notebook_config("00_walkthrough", {"profile": "quick", "steps": None})
    assert walk.model.hidden == presets.speech.WALKTHROUGH_SHRINK["model__hidden"]


def test_bad_profile_and_experiment():
    with pytest.raises(ValueError, match="profile 'fast'.*smoke"):
        config.load("fast", "speech")
    with pytest.raises(ValueError, match="experiment 'video'"):
        config.load("quick", "video")


def test_configs_are_frozen():
    cfg = config.load("smoke", "toy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 3


def test_from_dict_rejects_unknown_block_keys():
    d = config.load("smoke", "toy").to_dict()
    d["train"]["warp"] = 9
    with pytest.raises(ValueError, match="train.warp"):
        config.Config.from_dict(d)


def test_critic_bursts_off_the_validation_grid_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"critic_refresh_every=30 must be a multiple of "):
        config.load("quick", "images", objective__critic_refresh_every=30)  # eval_every 50
    with pytest.raises(ValueError, match="train.eval_every=0"):
        config.load("quick", "images", train__eval_every=0)
    assert config.load("quick", "images", objective__critic_refresh_every=100)


def test_run_folders_hash_a_field_added_later_only_where_the_run_reads_it():
    """Adding a config field must not orphan finished runs that it cannot change
    (paperlib.config.ADDED_LATER), and must move the runs it does change."""
    from paperlib.config import load
    from paperlib.records import config_hash
    from paperlib.studies.experiment import run_config

    def moved(experiment, objective, **change):
        cfg = run_config(load("quick", experiment), objective, 0, alpha=1.0, beta=1.0)
        return config_hash(cfg) != config_hash(cfg.replace(**change))

    # the set critic's depth: read by speech's cmi critic, by no critic of mi or the images
    assert moved("speech", "cmi", objective__critic_phi_layers=1)
    assert not moved("speech", "mi", objective__critic_phi_layers=1)
    assert not moved("images", "cmi", objective__critic_phi_layers=1)
    # the window critic's random positions and its catch-up bursts: cmi runs only
    for change in (
        dict(objective__critic_positions=32),
        dict(objective__critic_refresh_every=0, objective__monitor_fit_items=0),
    ):
        assert moved("images", "cmi", **change)
        assert not moved("images", "mi", **change)
    assert not moved("speech", "cmi", objective__critic_positions=32)  # the set critic
    assert not moved("speech", "cmi", objective__critic_refresh_steps=7)  # no bursts there
    # bf16 is a different computation; fp32, the default, names the folders as before
    assert moved("images", "mi", train__precision="bf16")
