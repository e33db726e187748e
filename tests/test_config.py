"""Config validation: good values load, every kind of bad value names its key."""

import dataclasses

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


def test_config_imports_no_other_paperlib_module_and_no_torch():
    import subprocess
    import sys

    code = "import sys, paperlib.config; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(out.stdout)  # a printed list of module names
    assert [m for m in loaded if m.startswith("paperlib.")] == ["paperlib.config"]
    assert "torch" not in loaded


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


def test_run_folders_hash_a_field_added_later_only_where_the_run_reads_it():
    """Adding a config field must not orphan finished runs that it cannot change
    (paperlib.config.ADDED_LATER), and must move the runs it does change."""
    from paperlib.config import load
    from paperlib.experiment import run_config
    from paperlib.records import config_hash

    def moved(experiment, objective, **change):
        cfg = run_config(load("quick", experiment), objective, 0, alpha=1.0, beta=1.0)
        return config_hash(cfg) != config_hash(cfg.replace(**change))

    # the set critic's depth: read by speech's cmi critic, by no critic of mi or the images
    assert moved("speech", "cmi", objective__critic_phi_layers=1)
    assert not moved("speech", "mi", objective__critic_phi_layers=1)
    assert not moved("images", "cmi", objective__critic_phi_layers=1)
    # bf16 is a different computation; fp32, the default, names the folders as before
    assert moved("images", "mi", train__precision="bf16")
