"""The objectives of DESIGN section 2: `elbo`, `mi`, `cmi` and `cmi_club`.

Each objective is an ``nn.Module`` that owns its critics and their Adam optimiser, so that a
checkpoint of ``objective.state_dict()`` restores critics *and* critic optimiser state. The
trainer (paperlib.training.train.fit) uses two methods, in this order per step (docs/DESIGN.md, section 2)::

    loss, terms = objective.model_loss(out, step)   # critics' estimates as constants
    loss.backward(); model_optimizer.step()
    objective.critic_step(out)                      # on out.detached(), its own optimiser

Objectives (maximised; `model_loss` returns the negative averaged over the batch):

- elbo: ELBO = E_q[log p(x|z,s)] - KL(q(z|x)||p(z)) - KL_s
- mi:   ELBO + alpha * I_q(x; z)
- cmi:  ELBO + alpha * I_q(x; z) - beta * I_q(z; s)          (Akuzawa et al. 2021)

I_q(x; z) uses E_x KL(q(z|x)||p(z)) = I_q(x;z) + KL(q(z)||p(z)) (Hoffman & Johnson 2016), with
the aggregate term chosen by ``objective.mi_xz``:

- "minibatch": I_q(x;z) ~ mean_i [log q(z_i|x_i) - log 1/B sum_j q(z_i|x_j)], bounded by log B;
- "density_ratio": KL(q(z)||p(z)) ~ E_q[T(z)] from a critic of q(z) vs p(z);
- "mmd": KL(q(z)||p(z)) replaced by MMD_SCALE * MMD^2(q(z), p(z)) (InfoVAE; not in nats).

Boundedness (DESIGN section 2 warns that alpha = 2 with an unbounded estimate reached 1e25 nats):
for alpha > 1 the rewarded quantity I_hat = E KL(q(z|x)||p) - KL_hat is capped at log B on
the "density_ratio" and "mmd" routes, the same bound the minibatch estimate obeys. Beyond the
cap the bonus has zero gradient and the plain ELBO pulls the rate back, so every alpha the config
offers (up to 20) keeps the loss finite. For alpha <= 1 no cap is needed (the rate keeps a
non-negative penalty 1 - alpha) and none is applied.

I_q(z; s) for `cmi` is the adversarial density-ratio estimate mean_i logit D(z_i, s_i): with
``critic_pairs="set"`` of the whole sequence s_1:T, all pairs of a batch scored at once
(paperlib.estimators.critics.SetCritic, on the scale of the reward); with "step" or "sequence" of one
position or a GRU summary (paperlib.estimators.critics.DensityRatioCritic); `cmi_club` uses the CLUB upper
bound with a variational q(z | s). The model's gradient flows into z and s; the critics'
parameters are frozen while the model's loss is built, so the model step never writes critic
gradients.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch
from torch import Tensor, nn

from paperlib.estimators.critics import (
    ClubCritic,
    DensityRatioCritic,
    PriorRatioCritic,
    SetCritic,
    WindowCritic,
)
from paperlib.estimators.mi import mmd
from paperlib.gaussian import minibatch_mi_xz
from paperlib.outputs import VAEOutput
from paperlib.registry import Registry

OBJECTIVES: Registry = Registry("objective", key="objective.name")

#: weight that puts MMD^2 (a unitless, small number) on the scale of a KL in nats (InfoVAE uses
#: large weights on MMD for the same reason)
MMD_SCALE = 100.0


class _frozen:
    """Context: parameters of `module` do not require grad (the graph treats them as constants)."""

    def __init__(self, module: nn.Module):
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: Any) -> None:
        for p in self.params:
            p.requires_grad_(True)


class Objective(nn.Module):
    """Base: the ELBO. Subclasses add terms and critics.

    Parameters
    ----------
    cfg : ObjectiveConfig (name, alpha, beta, mi_xz, critic_hidden, critic_lr, n_critic,
        critic_pairs, warmup_steps).
    model : the SequentialVAE (for z_dim, s_dim and the device).
    seed : seeds the objective's own generator (shuffles, prior samples, positions t).
    """

    def __init__(self, cfg, model: nn.Module, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.s_dim = int(model.z_dim), int(model.s_dim)
        self.grid = grid_of(model)
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.critics = nn.ModuleDict()
        self.critic_opt: torch.optim.Optimizer | None = None
        #: the critics' logs on the last step's batch before they trained on it (held out)
        self.first_critic_logs: dict[str, float] = {}
        #: detached outputs of the last ``critic_replay`` batches (the critics' replay buffer)
        self.replay: deque[VAEOutput] = deque(maxlen=int(getattr(cfg, "critic_replay", 0)))
        #: rows of the critics' last update (the batch and its replay): a burst's batch size
        self._rows_per_update = 2

    # -- critics ------------------------------------------------------------------------------

    def _finish_critics(self, model: nn.Module) -> None:
        """Move critics to the model's device and give them one Adam optimiser."""
        params = list(model.parameters())
        if params:
            self.to(params[0].device)
        if len(self.critics) > 0:
            self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=self.cfg.critic_lr)

    def critic_losses(self, out: VAEOutput) -> dict[str, Tensor]:
        """Losses of each critic on detached outputs (none for the ELBO)."""
        return {}

    def critic_step(self, out: VAEOutput) -> dict[str, float]:
        """``n_critic`` optimiser steps of the critics on detached z and s.

        Every critic sees ``out.detached()``, so no gradient reaches the model; the critics'
        own gradients (from nowhere else) are zeroed before each backward. With
        ``critic_replay`` = k > 0 the critics train on this batch and the k before it (pairs
        from an encoder at most k steps older), so each update sees (k + 1) x B rows.
        """
        if self.critic_opt is None:
            return {}
        d = out.detached()
        rows = VAEOutput.cat([*self.replay, d]) if self.replay.maxlen else d
        self._rows_per_update = len(rows.z)
        if self.replay.maxlen:
            self.replay.append(d)
        if self.replay.maxlen or self.cfg.n_critic == 0:
            with torch.no_grad():  # held out: this batch, before the critics train on it
                self.first_critic_logs = _floats(self.critic_losses(d))
            if self.cfg.n_critic == 0:  # the critic trains in its bursts only (refresh)
                return dict(self.first_critic_logs)
        logs: dict[str, float] = {}
        for i in range(self.cfg.n_critic):
            losses = self.critic_losses(rows)
            self.critic_opt.zero_grad(set_to_none=True)
            total = sum(v for k, v in losses.items() if k.startswith("critic_loss"))
            total.backward()
            self.critic_opt.step()
            logs = {k: float(v.detach()) for k, v in losses.items()}
            if i == 0 and not self.replay.maxlen:  # before the critics trained on this batch
                self.first_critic_logs = logs
        return logs

    # -- the model's loss ---------------------------------------------------------------------

    def elbo_terms(self, out: VAEOutput) -> dict[str, Tensor]:
        """Batch means of log p(x|z,s), KL_z, KL_s and the ELBO, in nats.

        ``elbo_train`` is what the objectives maximise: the ELBO with KL_s weighted by
        ``kl_s_weight`` (gamma; 1 gives the ELBO itself, < 1 weakens the local prior).
        """
        t = {
            "log_px": out.log_px.mean(),
            "kl_z": out.kl_z.mean(),
            "kl_s": out.kl_s.mean(),
            "elbo": out.elbo.mean(),
        }
        # ELBO_gamma = E log p(x|z,s) - KL_z - gamma * KL_s
        t["elbo_train"] = t["log_px"] - t["kl_z"] - self.cfg.kl_s_weight * t["kl_s"]
        return t

    def model_loss(self, out: VAEOutput, step: int) -> tuple[Tensor, dict[str, float]]:
        """(loss to minimise, logged terms as floats). Here: loss = -ELBO."""
        t = self.elbo_terms(out)
        loss = -t["elbo_train"]
        return loss, _floats(t, loss=loss)

    # -- checkpointing: critic optimiser and generator ride along in state_dict ---------------

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "critic_opt": self.critic_opt.state_dict() if self.critic_opt is not None else {},
            "generator": self.generator.get_state(),
            # a resumed run's critics see the same rows as an uninterrupted one
            "replay": [dict(o.__dict__) for o in self.replay],
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if self.critic_opt is not None and state.get("critic_opt"):
            self.critic_opt.load_state_dict(state["critic_opt"])
        if "generator" in state:
            self.generator.set_state(state["generator"].cpu())
        self.replay.clear()
        self.replay.extend(VAEOutput(**fields) for fields in state.get("replay", []))


def _floats(terms: dict[str, Tensor], **more: Tensor) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in {**terms, **more}.items()}


@OBJECTIVES.register("elbo")
class ELBO(Objective):
    """ELBO = E_q[log p(x|z,s)] - KL(q(z|x)||p(z)) - KL_s (Kingma & Welling 2014)."""

    def __init__(self, cfg, model: nn.Module, seed: int = 0):
        super().__init__(cfg, model, seed)
        self._finish_critics(model)


@OBJECTIVES.register("mi")
class MIObjective(Objective):
    """ELBO + alpha * I_q(x; z)  (MI-VAE; Zhao et al. 2019, Phuong et al. 2018).

    ELBO + alpha I_q(x;z) = E log p - (1 - alpha) E_x KL(q(z|x)||p) - alpha KL(q(z)||p) - KL_s
                          = ELBO + alpha * (E_x KL(q(z|x)||p) - KL(q(z)||p))
    """

    def __init__(self, cfg, model: nn.Module, seed: int = 0):
        super().__init__(cfg, model, seed)
        if cfg.mi_xz not in ("minibatch", "density_ratio", "mmd"):
            raise ValueError(
                f"objective.mi_xz={cfg.mi_xz!r} is not accepted; "
                "choose one of ['minibatch', 'density_ratio', 'mmd']"
            )
        if cfg.mi_xz == "density_ratio" and cfg.alpha > 0:
            self.critics["prior_ratio"] = PriorRatioCritic(self.z_dim, cfg.critic_hidden)
        self._init_zs_critic()
        self._finish_critics(model)

    def _init_zs_critic(self) -> None:
        """Subclasses add the I_q(z; s) critic."""

    def mi_xz_terms(self, out: VAEOutput) -> dict[str, Tensor]:
        """mi_xz (the rewarded estimate of I_q(x;z), capped for alpha > 1) and kl_agg."""
        alpha, b = self.cfg.alpha, out.z.shape[0]
        kl_mean = out.kl_z.mean()
        if self.cfg.mi_xz == "minibatch":
            # I_q(x;z) ~ mean_i [log q(z_i|x_i) - log 1/B sum_j q(z_i|x_j)]  <= log B
            mi_xz = minibatch_mi_xz(out.z, out.z_mean, out.z_logvar)
            # KL(q(z)||p(z)) = E_x KL(q(z|x)||p(z)) - I_q(x;z)
            return {"mi_xz": mi_xz, "kl_agg": (kl_mean - mi_xz).detach()}
        if self.cfg.mi_xz == "density_ratio":
            if alpha == 0:
                zero = kl_mean.new_zeros(())
                return {"mi_xz": zero, "kl_agg": zero}
            # KL(q(z)||p(z)) ~ E_q T(z); the critic's parameters are constants here
            with _frozen(self.critics["prior_ratio"]):
                kl_agg = self.critics["prior_ratio"].kl(out.z)
        else:
            prior = torch.randn(out.z.shape, generator=self.generator).to(out.z)
            # KL(q(z)||p(z)) ~ MMD_SCALE * MMD^2(q(z), p(z))   (a surrogate, not nats)
            kl_agg = MMD_SCALE * mmd(out.z, prior)
        # I_q(x;z) = E_x KL(q(z|x)||p(z)) - KL(q(z)||p(z))
        mi_xz = kl_mean - kl_agg.clamp_min(0.0)
        if alpha > 1.0:
            # cap: alpha > 1 rewards the rate; an unbounded reward diverges (DESIGN section 2)
            mi_xz = mi_xz.clamp(max=math.log(b))
        return {"mi_xz": mi_xz, "kl_agg": kl_agg}

    def critic_losses(self, out: VAEOutput) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        if "prior_ratio" in self.critics:
            losses["critic_loss_kl_agg"] = self.critics["prior_ratio"].loss(out.z, self.generator)
        return losses

    def model_loss(self, out: VAEOutput, step: int) -> tuple[Tensor, dict[str, float]]:
        t = self.elbo_terms(out)
        m = self.mi_xz_terms(out)
        # objective = ELBO + alpha * I_q(x;z)
        objective = t["elbo_train"] + self.cfg.alpha * m["mi_xz"]
        loss = -objective
        return loss, _floats(t, **m, loss=loss)


@OBJECTIVES.register("cmi")
class CMIObjective(MIObjective):
    """ELBO + alpha * I_q(x; z) - beta * I_q(z; s)  (Akuzawa et al. 2021, the proposed method).

    I_q(z; s) ~ mean_i logit D(z_i, s_i), D the adversarial density-ratio critic (DESIGN
    section 2). The critic warms up before beta acts: beta is 0 for ``warmup_steps``, then
    (with ``warmup_plateau`` > 0) until the critic's held-out accuracy - measured on each new
    batch before the critic trains on it, as an EMA - has not improved by 0.005 for
    ``warmup_plateau`` steps (at most until ``warmup_max_steps``); then beta rises linearly over
    ``beta_ramp_steps``. The step where it started is logged (``beta_start``) and checkpointed.
    """

    #: EMA weight of the held-out accuracy, and the rise that counts as an improvement
    ACC_EMA, ACC_MIN_GAIN = 0.05, 0.005

    def __init__(self, cfg, model: nn.Module, seed: int = 0):
        super().__init__(cfg, model, seed)
        if self.cfg.zs_penalty == "hinge" and not hasattr(self.critics["zs"], "rows"):
            raise ValueError(
                f"objective.zs_penalty='hinge' needs a critic that scores each pair (rows); "
                f"{type(self.critics['zs']).__name__} does not: use zs_penalty='estimate'"
            )
        self.beta_start: int | None = None
        self.acc_ema, self.acc_best, self.acc_best_step = 0.5, 0.5, 0
        # the other family's critic of the last monitor, when fitted as evaluation fits it
        self.final_other: dict[str, Any] | None = None
        self._step = 0

    @property
    def target(self) -> str:
        """What the penalty estimates: "window" (I(z; s_window)) or "sequence" (I(z; s_1:T))."""
        return "window" if self.cfg.critic_pairs == "window" else "sequence"

    def _init_zs_critic(self) -> None:
        self.critics["zs"] = zs_critic(self.cfg, self.z_dim, self.s_dim, self.grid)

    def critic_losses(self, out: VAEOutput) -> dict[str, Tensor]:
        losses = super().critic_losses(out)
        loss, acc = self.critics["zs"].loss(out.z, out.s, self.generator)
        losses["critic_loss_zs"] = loss
        losses["critic_acc_zs"] = acc
        return losses

    def critic_step(self, out: VAEOutput) -> dict[str, float]:
        logs = super().critic_step(out)
        # held-out accuracy: on this batch before the critic trained on it (its first update)
        acc = self.first_critic_logs["critic_acc_zs"]
        self.acc_ema += self.ACC_EMA * (acc - self.acc_ema)
        if self.acc_ema > self.acc_best + self.ACC_MIN_GAIN:
            self.acc_best, self.acc_best_step = self.acc_ema, self._step
        self._maybe_start_beta(self._step + 1)
        logs["critic_acc_zs_heldout"] = self.acc_ema
        return logs

    def _maybe_start_beta(self, done: int) -> None:
        cfg = self.cfg
        if self.beta_start is not None or done < cfg.warmup_steps:
            return
        plateau = cfg.warmup_plateau == 0 or done - self.acc_best_step >= cfg.warmup_plateau
        capped = cfg.warmup_max_steps > 0 and done >= cfg.warmup_max_steps
        if plateau or capped:
            self.beta_start = done

    def beta_at(self, step: int) -> float:
        """beta at a step: 0 while the critic warms up, then a linear ramp to cfg.beta."""
        if self.beta_start is None:
            # without a critic step yet (evaluation), the fixed warm-up decides
            if self.cfg.warmup_plateau > 0 or step < self.cfg.warmup_steps:
                return 0.0
            start = self.cfg.warmup_steps
        else:
            start = self.beta_start
        if step < start:
            return 0.0
        ramp = self.cfg.beta_ramp_steps
        # beta_t = beta * min(1, (t - start + 1) / ramp)
        return self.cfg.beta * (min(1.0, (step - start + 1) / ramp) if ramp > 0 else 1.0)

    def model_loss(self, out: VAEOutput, step: int) -> tuple[Tensor, dict[str, float]]:
        self._step = step
        t = self.elbo_terms(out)
        m = self.mi_xz_terms(out)
        beta = self.beta_at(step)
        critic = self.critics["zs"]
        with _frozen(critic), torch.set_grad_enabled(torch.is_grad_enabled() and beta > 0):
            if self.cfg.zs_penalty == "hinge":
                # T_i = T(z_i, s_i), the estimated log density ratio of each joint pair
                rows = critic.rows(out.z, out.s, self.generator)
                # I_q(z;s) ~ mean_i T_i (logged); the encoder pays mean_i max(T_i, 0): below
                # 0 a pair already looks independent, and pushing it further only exploits
                # where the critic extrapolates (a frozen critic read -3877 nats there)
                mi_zs, penalty = rows.mean(), rows.clamp_min(0.0).mean()
            else:
                # I_q(z;s) ~ mean_i logit D(z_i, s_i): gradient into z and s, not into D
                mi_zs = penalty = critic.mi(out.z, out.s, self.generator)
        # objective = ELBO + alpha * I_q(x;z) - beta * I_q(z;s)
        objective = t["elbo_train"] + self.cfg.alpha * m["mi_xz"] - beta * penalty
        loss = -objective
        start = -1.0 if self.beta_start is None else float(self.beta_start)
        extra = {"zs_penalty": penalty} if self.cfg.zs_penalty == "hinge" else {}
        return loss, _floats(
            t, **m, mi_zs=mi_zs, beta=torch.tensor(beta), beta_start=torch.tensor(start),
            loss=loss, **extra,
        )  # fmt: skip

    @torch.no_grad()
    def monitor(
        self,
        model: nn.Module,
        x: Tensor,
        done: int,
        final: bool = False,
        x_fit: Tensor | None = None,
    ) -> dict[str, float]:
        """Every ``monitor_every`` steps: the training critic's reading on validation rows `x`
        beside a fresh critic of the other family (paperlib.estimators.instrument), and their
        ratio (max / min; a run above `MONITOR_RATIO` is flagged in the tables); also at the
        run's last step (`final`).

        With training items `x_fit` (``objective.monitor_fit_items``) the fresh critic fits on
        them as evaluation fits it (`instrument.EVALUATION`'s budget, early stopping on a
        fifth) and both critics are read on all of `x`. Without, it fits on three eighths of
        `x`, stops on one eighth and both are read on the other half (`instrument.MONITOR`):
        on speech's 256 validation items that critic read -0.39 nats where the training
        critic's NWJ bound on the same rows was 0.58, a true lower bound; fitted on 1,792
        training items at 1500 steps it read 1.25 against the training critic's 1.47.

        The last monitor's critic fitted on `x_fit` is kept (`final_other`): `train.fit` saves
        it and evaluation reads it instead of fitting the same critic again."""
        every = self.cfg.monitor_every
        if every <= 0 or (done % every and not final):
            return {}
        from paperlib.estimators import instrument  # the estimator family; lazy: sklearn, scipy

        as_evaluation = x_fit is not None
        if not as_evaluation:
            # three disjoint sets of validation items: three eighths feed the fresh critic (a
            # pool of posterior samples of each), one eighth stops it early, and both critics
            # are read on the other half
            half = len(x) // 2
            x_read, x_fit, select_fraction = x[half:], x[:half], 0.25
            budget = instrument.MONITOR[self.target]
        else:  # as evaluation: training items, early stopping on a fifth, read on all of x
            x_read, select_fraction = x, 0.2
            budget = instrument.EVALUATION[self.target]
        model.eval()
        fit = dict(
            critic_pairs=self.cfg.critic_pairs, grid=self.grid, window=self.cfg.critic_window,
            lr=self.cfg.critic_lr, hidden=self.cfg.critic_hidden, **budget,
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(done)
            z, s = instrument.encode(model, x_read)
            sample, select = instrument.fit_and_select(
                model, x_fit, select_fraction=select_fraction, samples=instrument.POOL_SAMPLES
            )
            with torch.enable_grad():
                critic = instrument.fit_other(
                    sample=sample, z_dim=z.shape[1], s_dim=s.shape[2], seed=done, select=select,
                    **fit,
                )  # fmt: skip
            other = instrument.read_other(critic, z, s, seed=done)
        model.train()
        if final and as_evaluation:
            # fitted as evaluation fits its own (on training items, its budget, stopped on a
            # fifth): evaluation reads this one when it evaluates these weights (train.fit
            # saves it beside the checkpoints; run_metrics.evaluate_run)
            self.final_other = {
                "step": done,
                "items": len(x_fit),
                "fit": fit,
                "state": critic.state_dict(),
            }
        reading = instrument.critic_reading(self.critics["zs"], z, s)
        return {
            "mi_zs_val_critic": reading,
            "mi_zs_val_other": other["nats"],
            "monitor_ratio": instrument.agreement(reading, other["nats"]),
        }

    def refresh(
        self, model: nn.Module, done: int, x_fit: Tensor | None, x_read: Tensor | None = None
    ) -> dict[str, float]:
        """Every ``critic_refresh_every`` steps, a catch-up burst: ``critic_refresh_steps``
        updates of the I(z; s) critic on one posterior sample of each training item `x_fit`
        (``monitor_fit_items`` of them), encoded by the current encoder, in batches of the
        size it trains at. The trainer calls it after the monitor, so the monitor reads the
        critic the encoder was trained against.

        With held-out items `x_read` (the validation rows) the burst also logs the critic's
        reading there before and after it, ``critic_lag_before`` and ``critic_lag_after``:
        their ratio is how far the critic had fallen behind the encoder since the last burst,
        at no fitting cost (the readings touch neither the critic nor the burst's samples).

        Why: the encoder learns to evade the one critic it trains against. On an images `cmi`
        run the live critic read 0.26 nats on validation rows where the other family read 0.74;
        continued on the frozen encoder it read 0.73 after 100 updates and 0.99 after 400: the
        critic lags an encoder that moves away from it, and catches up on diverse pairs of the
        current encoder within about a hundred updates (docs/DESIGN.md, "Instrument").
        """
        every = self.cfg.critic_refresh_every
        if every <= 0 or done % every or self.critic_opt is None:
            return {}
        if x_fit is None:
            raise ValueError(
                "objective.critic_refresh_every > 0 needs training items to encode: set "
                "objective.monitor_fit_items > 0 (for instance 2000)"
            )
        from paperlib.estimators import instrument  # lazy: sklearn, scipy

        critic, batch = self.critics["zs"], self._rows_per_update
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(done)
            z, s = instrument.encode(model, x_fit)
            # after x_fit: its posterior samples are the same with or without the read-out
            held = None if x_read is None else instrument.encode(model, x_read)
        model.train(was_training)
        logs = (
            {} if held is None else {"critic_lag_before": instrument.critic_reading(critic, *held)}
        )
        accs = instrument.fit_critic(
            critic, instrument.rows_sampler(z, s), steps=self.cfg.critic_refresh_steps,
            batch_size=batch, seed=done, optimizer=self.critic_opt,
        )  # fmt: skip
        if held is not None:
            logs["critic_lag_after"] = instrument.critic_reading(critic, *held)
        tail = accs[-max(len(accs) // 10, 1) :]
        return {"critic_refresh_acc": sum(tail) / len(tail), **logs}

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        state["warmup"] = {
            "beta_start": -1 if self.beta_start is None else self.beta_start,
            "acc": [self.acc_ema, self.acc_best, self.acc_best_step],
        }
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        if "warmup" in state:
            start = int(state["warmup"]["beta_start"])
            self.beta_start = None if start < 0 else start
            ema, best, best_step = state["warmup"]["acc"]
            self.acc_ema, self.acc_best, self.acc_best_step = (
                float(ema),
                float(best),
                int(best_step),
            )


def zs_critic(obj_cfg, z_dim: int, s_dim: int, grid: tuple[int, int]) -> nn.Module:
    """The `cmi` objective's I_q(z; s) critic named by ``obj_cfg.critic_pairs`` (a fresh one:
    the qualification trains it on planted and frozen data exactly as training does).

    "set": SetCritic on s_1:T; "window" / "conv": WindowCritic on s laid out on `grid`, per
    window (``critic_window``) or pooled; "sequence" / "step": DensityRatioCritic.
    """
    pairs = obj_cfg.critic_pairs
    if pairs == "set":
        # I_q(z; s_1:T) over the whole sequence, all B x B pairs per step (critics.py)
        return SetCritic(z_dim, s_dim, obj_cfg.critic_hidden, phi_layers=obj_cfg.critic_phi_layers)
    if pairs in ("window", "conv"):
        # s on its grid, read by a convolution: each window (I(z; s_window)) or pooled
        window = obj_cfg.critic_window if pairs == "window" else 0
        positions = obj_cfg.critic_positions if pairs == "window" else 0
        return WindowCritic(
            z_dim, s_dim, grid, obj_cfg.critic_hidden, window=window, train_positions=positions
        )
    return DensityRatioCritic(z_dim, s_dim, obj_cfg.critic_hidden, mode=pairs)


#: two readings of I(z; s) that differ by more than this factor flag a run in the tables
MONITOR_RATIO = 1.5


def grid_of(model: nn.Module) -> tuple[int, int]:
    """The grid of s's positions: (H, W) of an image model's ``x_shape`` (C, H, W), else (1, T)
    with T the model's ``n_frames`` (1 when the model does not say)."""
    shape = getattr(model, "x_shape", None)
    if shape is not None and len(shape) == 3:
        return int(shape[1]), int(shape[2])
    return 1, int(getattr(model, "n_frames", 1) or 1)


@OBJECTIVES.register("cmi_club")
class CMIClubObjective(CMIObjective):
    """`cmi` with I_q(z; s) from the CLUB upper bound with a variational q(z | s) (Cheng 2020)."""

    def _init_zs_critic(self) -> None:
        # "set": q(z | h(s_1:T)) on the DeepSets summary of the whole sequence
        self.critics["zs"] = ClubCritic(
            self.z_dim, self.s_dim, self.cfg.critic_hidden, mode=self.cfg.critic_pairs
        )


def build_objective(obj_cfg, model: nn.Module, seed: int = 0) -> Objective:
    """The objective named ``obj_cfg.name`` with its critics on the model's device.

    Parameters
    ----------
    obj_cfg : ObjectiveConfig.
    model : the SequentialVAE it regularises (its z_dim, s_dim and device are used).
    seed : seed of the objective's generator (shuffles, prior samples).
    """
    return OBJECTIVES.get(obj_cfg.name)(obj_cfg, model, seed)


__all__ = [
    "CMIClubObjective",
    "CMIObjective",
    "ELBO",
    "MIObjective",
    "MMD_SCALE",
    "MONITOR_RATIO",
    "OBJECTIVES",
    "Objective",
    "build_objective",
    "grid_of",
    "zs_critic",
]
