"""Shared test settings: small thread counts so the suite behaves on 2 cores."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # tests only; executed notebooks keep the inline backend
torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg():
    from paperlib import config

    return config.load("smoke", "toy")
