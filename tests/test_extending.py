"""The README's extension recipe: register a new objective, and the config, the trainer and
the notebooks' parameter check accept it by name; an unregistered name is refused at use."""

import pytest

from paperlib import config
from paperlib.data import load_data
from paperlib.models import build_model
from paperlib.studies import experiment
from paperlib.suite import params
from paperlib.training.regularizers import ELBO, OBJECTIVES, build_objective


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
    model, _, history = experiment.train_run(cfg, load_data(cfg.data), run_root=tmp_path)
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
        "overrides": {},
    }
    assert params.check_params("01_speech_dsae", ns)["objectives"] == ["elbo", kl_annealed]


def test_an_unregistered_name_is_still_refused():
    # config checks types and ranges only; the name is refused where it is used, naming the key
    cfg = config.load("smoke", "toy", objective__name="not_registered")
    model = build_model(cfg.model, load_data(cfg.data).info)
    with pytest.raises(
        ValueError, match=r"objective.name 'not_registered' is not registered.*elbo"
    ):
        build_objective(cfg.objective, model)
    # and before any notebook runs, by the runner's parameter check
    ns = {"profile": "smoke", "seeds": None, "objectives": ["elbo", "not_registered"]}
    ns.update(alpha=None, beta=None, dataset="synthetic_speech", data_dir="d", steps=None)
    ns.update(results_dir="r", out_dir="o")
    with pytest.raises(params.ParameterError, match="objectives"):
        params.check_params("01_speech_dsae", ns)
