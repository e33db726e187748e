"""The paper profile's presets train on CPU for a few steps (on embedded data of the same shapes),
so that they cannot rot unseen while only the quick profile runs."""

import pytest
import torch

from paperlib import config
from paperlib.data import load_data
from paperlib.studies import experiment

# embedded stand-ins for TIMIT and MNIST: the same feature and image shapes, small and offline
EMBEDDED = {
    "speech": dict(
        data__name="synthetic_speech",
        data__n_speakers=6,
        data__n_heldout_speakers=2,
        data__utts_per_speaker=6,
        data__val_fraction=0.2,
        data__test_fraction=0.2,
    ),
    "images": dict(data__name="mnist5k", data__image_size=0, data__max_items=64),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["speech", "images"])
def test_paper_preset_trains_a_few_steps_on_cpu(name, tmp_path):
    cfg = config.load("paper", name, **EMBEDDED[name])
    # the preset's model, objective and critic as they are; fewer steps and a smaller batch
    cfg = cfg.replace(
        objective__name="cmi",
        objective__alpha=2.0,
        objective__beta=2.0,
        objective__warmup_steps=1,
        data__batch_size=8,
        train__steps=3,
        train__eval_every=2,
        train__val_items=8,
        train__checkpoint_every=0,
        train__progress=False,
        train__device="cpu",
    )
    torch.set_num_threads(1)
    bundle = load_data(cfg.data)
    model, objective, history = experiment.train_run(cfg, bundle, tmp_path)
    assert history.steps == 3 and history.best_step in (2, 3)
    final = history.final
    assert all(torch.isfinite(torch.tensor(v)) for v in final.values())
    assert "critic_acc_zs" in final and "mi_zs" in final
