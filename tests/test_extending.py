"""The README's extension recipe: register a new objective, and the config, the trainer and
the notebooks' parameter check accept it by name."""

import pytest

from paperlib import config, experiment, params
from paperlib.data import load_data
from paperlib.regularizers import ELBO, OBJECTIVES


@pytest.fixture(scope="module")
def kl_annealed():
    if "elbo_annealed" not in OBJECTIVES:

        @OBJECTIVES.register("elbo_annealed")
        class AnnealedELBO(ELBO):
            """ELBO with KL_z weighted by min(1, step / 20) (Bowman et al. 2016)."""

            def model_loss(self, out, step):
                t = self.elbo_terms(out)
                # objective = E log p(x|z,s) - min(1, step/20) KL_z - KL_s
                objective = t["log_px"] - min(1.0, step / 20) * t["kl_z"] - t["kl_s"]
                return -objective, {k: float(v.detach()) for k, v in t.items()}

    return "elbo_annealed"


def test_a_registered_objective_is_accepted_by_name(kl_annealed, tmp_path):
    cfg = config.load("smoke", "toy", objective__name=kl_annealed)
    model, _, history = experiment.train(cfg, load_data(cfg.data), run_root=tmp_path)
    assert history.steps == cfg.train.steps
    ns = {
        "profile": "smoke",
        "seeds": None,
        "objectives": ["elbo", kl_annealed],
        "alpha": None,
        "beta": None,
        "dataset": "synthetic_speech",
        "data_dir": "d",
        "steps": None,
        "results_dir": "r",
        "out_dir": "o",
    }
    assert params.check_params("01_speech_dsae", ns)["objectives"] == ["elbo", kl_annealed]


def test_an_unregistered_name_is_still_refused():
    with pytest.raises(ValueError, match="objective.name.*elbo"):
        config.load("smoke", "toy", objective__name="not_registered")
