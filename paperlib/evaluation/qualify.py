"""Qualify the I_q(z; s) instrument before trusting it (issue 20; docs/DESIGN.md, "Instrument").

For a model's s shape and the penalty's target, three kinds of rows:

- planted: `paperlib.estimators.instrument.planted` data with a closed-form value (0.5 to 4 nats), no
  pooled statistic carrying it. Pass: the training critic recovers >= 80 % of it.
- independent: the same shapes, true value 0. Pass: within 0.05 nats of 0.
- frozen: the encodings of a trained `mi` run. Pass: the training critic's held-out reading is
  within 20 % of the other family's (`paperlib.estimators.instrument.other_reading`: a critic of another
  architecture, trained as evaluation trains it and read on the same rows).
- live: a `cmi` run's own critic at its last step, the one the encoder trained against, beside
  the monitor's fresh critic of the other family (`CMIObjective.monitor`). Pass: within the
  monitor's 1.5x (`MONITOR_RATIO`): the critic kept up with an encoder that learns to evade it.

The training critic is built by `paperlib.training.regularizers.zs_critic` from the run's objective
config and trained as the run trains it: its learning rate, its batch size with the replay
buffer (`critic_batch`), ``n_critic`` steps per model step for the run's step budget
(`training_steps`), on training rows; it is read on held-out rows. benchmarks/qualify_critics.py prints the table; tests/test_instrument.py holds
the cases on small shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from paperlib.estimators import instrument
from paperlib.training.regularizers import MONITOR_RATIO, zs_critic

#: pass thresholds of the qualification
MIN_RECOVERED, MAX_INDEPENDENT, MAX_FROZEN_GAP = 0.8, 0.05, 0.2


def target_of(obj_cfg) -> str:
    """The quantity a run's penalty estimates: "window" or "sequence"."""
    return instrument.target(obj_cfg.critic_pairs)


def training_steps(cfg) -> int:
    """Critic steps of one run: n_critic per model step over the training budget."""
    return cfg.objective.n_critic * cfg.train.steps


def critic_batch(cfg) -> int:
    """Rows per critic update in training: the batch and the ``critic_replay`` batches before it."""
    return cfg.data.batch_size * (1 + cfg.objective.critic_replay)


def critic_row(
    cfg,
    sample,
    z_out: np.ndarray | torch.Tensor,
    s_out: np.ndarray | torch.Tensor,
    grid: tuple[int, int],
    steps: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The training critic trained on rows from ``sample`` (`paperlib.estimators.instrument.fit_critic`),
    read on the held-out rows (z_out, s_out).

    Returns ``critic_nats`` (held-out reading) and ``critic_acc`` (balanced accuracy on its
    training batches over the last tenth of its steps).
    """
    z_out, s_out = torch.as_tensor(z_out).float(), torch.as_tensor(s_out).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = zs_critic(cfg.objective, z_out.shape[1], s_out.shape[2], grid)
    steps = training_steps(cfg) if steps is None else steps
    accs = instrument.fit_critic(
        critic, sample, steps=steps, batch_size=critic_batch(cfg), lr=cfg.objective.critic_lr,
        seed=seed,
    )  # fmt: skip
    tail = accs[-max(len(accs) // 10, 1) :]
    return {
        "critic_nats": instrument.critic_reading(critic, z_out, s_out),
        "critic_nwj": instrument.critic_bound(critic, z_out, s_out),
        "critic_acc": float(np.mean(tail)),
    }


def planted_row(
    cfg,
    z_dim: int,
    s_dim: int,
    grid: tuple[int, int],
    nats: float,
    n: int = 2000,
    steps: int | None = None,
    other: bool = True,
    seed: int = 0,
    critic: bool = True,
) -> dict[str, Any]:
    """One planted (or, with ``nats=0``, independent) row: truth, training critic, other family.

    The training critic sees fresh planted rows at every step, as a run sees fresh posterior
    samples; it is read on `n` held-out rows, on which the other family is cross-fitted.
    With ``critic=False`` only the other family runs, and the pass rule applies to it.
    """
    target = target_of(cfg.objective)
    window = cfg.objective.critic_window
    source = instrument.Planted(z_dim, s_dim, grid, nats, target, window, seed=seed)
    z, s = source.sample(n, np.random.default_rng(seed + 1))
    row: dict[str, Any] = {
        "case": "planted" if nats > 0 else "independent",
        "true_nats": source.true,
    }
    sample = instrument.planted_sampler(source)
    if critic:
        row.update(critic_row(cfg, sample, z, s, grid, steps, seed))
    if other or not critic:
        # a quarter as many fresh rows again, to stop the other family early
        select = source.sample(max(n // 4, 2), np.random.default_rng(seed + 2))
        select = tuple(torch.from_numpy(a) for a in select)
        got = other_row(cfg, sample, z, s, grid, steps, seed, select=select)
        row.update(other_nats=got["nats"], other_nwj=got["nwj"])
    judged = row["critic_nats"] if critic else row["other_nats"]
    if nats > 0:
        row["recovered"] = judged / source.true
        row["passed"] = bool(row["recovered"] >= MIN_RECOVERED)
    else:
        row["passed"] = bool(abs(judged) <= MAX_INDEPENDENT)
    return row


def other_row(
    cfg, sample, z_out, s_out, grid, steps: int | None = None, seed: int = 0, select=None
) -> dict:
    """The other family (`paperlib.estimators.instrument.other_reading`) on the same rows, trained as
    evaluation trains it (`paperlib.estimators.instrument.evaluation_budget`: the reading of ``mi_zs_target_nats``
    in the tables, stopped early on the `select` rows) at the run's critic learning rate;
    `steps` overrides its budget."""
    budget = instrument.evaluation_budget(cfg.objective.critic_pairs, cfg.eval.posthoc_critic_steps)
    budget.update({} if steps is None else {"steps": steps})
    return instrument.other_reading(
        cfg.objective.critic_pairs, grid, sample, z_out, s_out,
        window=cfg.objective.critic_window, lr=cfg.objective.critic_lr, seed=seed,
        hidden=cfg.objective.critic_hidden, select=select, **budget,
    )  # fmt: skip


def frozen_row(
    cfg,
    model: torch.nn.Module,
    x_train: torch.Tensor,
    x_held: torch.Tensor,
    grid: tuple[int, int],
    steps: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A trained run's frozen encoder: the training critic against the other family.

    Both train as in the run, on fresh posterior samples of minibatches of `x_train`
    (`paperlib.estimators.instrument.encoder_sampler`), and are read on the encodings of the held-out
    items `x_held`; each also gives its NWJ lower bound there.
    """
    model.eval()
    torch.manual_seed(seed)
    z_held, s_held = instrument.encode(model, x_held)
    row: dict[str, Any] = {"case": "frozen"}
    row.update(
        critic_row(
            cfg, instrument.encoder_sampler(model, x_train), z_held, s_held, grid, steps, seed
        )
    )
    # the other family as evaluation trains it: a pool of posterior samples of four fifths of
    # the items, stopped on the rest
    sample, select = instrument.fit_and_select(model, x_train, samples=instrument.POOL_SAMPLES)
    other = other_row(cfg, sample, z_held, s_held, grid, steps, seed, select=select)
    row.update(other_nats=other["nats"], other_nwj=other["nwj"])
    row["other_low"], row["other_high"] = other["low"], other["high"]
    ref = max(abs(other["nats"]), 1e-9)
    row["gap"] = abs(row["critic_nats"] - other["nats"]) / ref
    row["passed"] = bool(row["gap"] <= MAX_FROZEN_GAP)
    return row


def live_row(history) -> dict[str, Any]:
    """A `cmi` run's training critic against the other family at its last monitored step.

    `history` is the run's `paperlib.training.train.History`; its last row holding
    ``monitor_ratio`` gives both readings on validation rows. ``critic_acc`` is the critic's
    held-out accuracy (EMA) when beta started, what the warm-up waited for.
    """
    monitored = [r for r in history.rows if "monitor_ratio" in r]
    if not monitored:
        raise ValueError(
            "the run logged no monitor reading: set objective.monitor_every > 0 (the quick "
            "images preset monitors every 300 steps)"
        )
    last = monitored[-1]
    start = max((r.get("beta_start", -1.0) for r in history.rows), default=-1.0)
    at_start = [r for r in history.rows if r["step"] <= start and "critic_acc_zs_heldout" in r]
    ratio = float(last["monitor_ratio"])
    return {
        "case": "live",
        "step": int(last["step"]),
        "beta_start": int(start),
        "critic_nats": float(last["mi_zs_val_critic"]),
        "critic_acc": float(at_start[-1]["critic_acc_zs_heldout"]) if at_start else float("nan"),
        "other_nats": float(last["mi_zs_val_other"]),
        "gap": ratio,
        "passed": bool(ratio <= MONITOR_RATIO),
    }


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A markdown table of qualification rows."""
    head = (
        "| model | target | case | true | training critic (NWJ bound) | acc. "
        "| other family (NWJ bound) | pass |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = {k: f"{v:.3f}" for k, v in r.items() if isinstance(v, float)}
        keys = ("true_nats", "critic_nats", "critic_nwj", "critic_acc", "other_nats", "other_nwj")
        f = {k: f.get(k, "–") for k in keys}
        # a frozen row names its encoder when the run recorded it ("cmi seed 101"), a live row
        # its run and the two readings' ratio
        case = f"{r['case']} ({r['frozen']})" if r.get("frozen") else r["case"]
        if r["case"] == "live":
            case = f"live ({r.get('run', 'cmi')}, step {r['step']}: {r['gap']:.2f}x)"
        lines.append(
            f"| {r.get('model', '')} | {r.get('target', '')} | {case} | {f['true_nats']} | "
            f"{f['critic_nats']} ({f['critic_nwj']}) | {f['critic_acc']} | "
            f"{f['other_nats']} ({f['other_nwj']}) | "
            f"{'yes' if r['passed'] else 'no'} |"
        )
    return "\n".join(lines)


__all__ = [
    "MAX_FROZEN_GAP",
    "MAX_INDEPENDENT",
    "MIN_RECOVERED",
    "critic_batch",
    "critic_row",
    "format_rows",
    "other_row",
    "frozen_row",
    "live_row",
    "planted_row",
    "target_of",
    "training_steps",
]
