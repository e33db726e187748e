"""Toy presets: a linear-Gaussian sequence with known MI, for tests (``config.load(p, "toy")``).

Each profile is a dict of config blocks (``data``, ``model``, ``objective``, ``train``,
``eval``) holding only what differs from the dataclass defaults of ``paperlib.config``.
"""

SMOKE = dict(
    data=dict(name="toy", batch_size=64),
    model=dict(name="toy", z_dim=2, s_dim=2, hidden=32),
    train=dict(steps=30, checkpoint_every=0, log_every=5, progress=False),
    objective=dict(critic_hidden=32),
)

QUICK = dict(
    data=dict(name="toy", batch_size=128),
    model=dict(name="toy", z_dim=2, s_dim=2, hidden=64),
    train=dict(steps=1500, checkpoint_every=500),
    objective=dict(critic_hidden=64),
)

# The paper profile of the toy experiment is the quick one: the toy model has no paper scale.
PAPER = QUICK
