"""THE training loop, for every model and every objective: `fit`.

Per step (docs/DESIGN.md section 2; adversarial order without retain_graph):

    out = model(x)
    loss, terms = objective.model_loss(out, step)     # critics' estimates, critics frozen
    loss.backward(); clip; model_optimizer.step()     # Adam on the model's parameters only
    objective.critic_step(out)                        # detached z, s; the critics' own Adam

Exact resume: batches come from a per-epoch permutation of ``loaders["train"].dataset`` drawn
from a generator seeded by (seed, epoch), so batch k of any run is known from the step alone.
A checkpoint holds model, optimiser, objective (critics and their optimiser, its generator) and
the global RNG states; a killed run resumed from it ends with the same weights as an
uninterrupted run on the same CPU.

One trainer per run folder: `fit` holds the folder's lock (``paperlib.records.run_lock``) while
it trains. A second process on the same folder says who trains it and waits, then resumes from
the first one's checkpoints (``$PAPERLIB_LOCK_WAIT=0`` refuses instead); the lock of a killed
process is taken over.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from paperlib.config import identity
from paperlib.data import TensorDictDataset
from paperlib.progress import progress_bar
from paperlib.records import (
    HistoryWriter,
    latest_valid_checkpoint,
    load_checkpoint,
    run_lock,
    save_checkpoint,
    set_rng_state,
)
from paperlib.runtime import ThreadClaim, autocast, get_device, has_amx, seed_everything

KEEP_CHECKPOINTS = 2
#: file that `fit` leaves in ``checkpoints/`` when the validation ELBO plateaued before
#: ``train.steps``: the run is complete (``paperlib.suite.plan`` reads it without loading anything)
STOPPED_MARKER = "stopped_early"
#: a run is trained when it stopped on its plateau or its best validation ELBO rose by less
#: than TRAINED_TOL over the last TRAINED_FRACTION of its steps (issue 22)
TRAINED_FRACTION, TRAINED_TOL = 0.2, 0.01
#: terms shown in the progress bar (when present)
POSTFIX_KEYS = ("loss", "elbo", "kl_z", "mi_xz", "mi_zs")


@dataclass
class History:
    """What `fit` returns.

    Attributes
    ----------
    rows : one dict per logged step: ``{"step": int, term: float, ...}``.
    final : the terms of the last step (floats).
    train_seconds : wall time of the optimisation steps, summed over a run and its resumes
        (checkpoints carry the time spent before them).
    steps : the number of completed steps.
    checkpoint : path of the last checkpoint written (None without a run_dir).
    best_step, best_val_elbo : the step whose weights the model holds after `fit` when
        ``train.eval_every`` > 0 (the best validation ELBO), else None.
    stopped_early : True when the validation ELBO stopped improving for ``train.patience``
        evaluations before ``train.steps``.
    critic_at_best : False only when the model was set back to its best step but the
        objective's critics could not be (a ``best.pt`` written before it stored them): a
        training critic's reading would then pair a critic and an encoder of different steps.
    other_family : the other-family critic that the run's last monitor fitted as evaluation
        fits its own (``{"step", "items", "fit", "state"}``, saved as ``other_family.pt``
        beside the checkpoints), when its step is the one whose weights the model holds; else
        None (`saved_other_family`).
    """

    rows: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    steps: int = 0
    checkpoint: Path | None = None
    best_step: int | None = None
    best_val_elbo: float | None = None
    stopped_early: bool = False
    critic_at_best: bool = True
    other_family: dict[str, Any] | None = None

    def val_elbo_gain(self, fraction: float = TRAINED_FRACTION) -> float:
        """How much the best validation ELBO rose over the last `fraction` of the steps, as a
        fraction of its value before them: (best_end - best_before) / |best_before|. NaN when
        the validation ELBO was not tracked before that point."""
        val = [(r["step"], r["val_elbo"]) for r in self.rows if "val_elbo" in r]
        cut = self.steps * (1.0 - fraction)
        before = [v for step, v in val if step <= cut]
        if not before:
            return math.nan
        best_before, best_end = max(before), max(v for _, v in val)
        return float((best_end - best_before) / max(abs(best_before), 1e-12))

    def trained(self, fraction: float = TRAINED_FRACTION, tol: float = TRAINED_TOL) -> bool:
        """The run counts as trained: it stopped on its validation plateau (``patience``), or
        its best validation ELBO rose by less than `tol` (1 %) over its last `fraction` (a
        fifth) of steps. A run still improving compares an unfinished model."""
        return bool(self.stopped_early or self.val_elbo_gain(fraction) < tol)

    def as_dict(self) -> dict[str, list[float]]:
        """Column view ``{key: [value per logged step]}`` (NaN where a key is missing)."""
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        return {k: [r.get(k, math.nan) for r in self.rows] for k in keys}


class BatchStream:
    """Deterministic, resumable batches: epoch e is a permutation seeded by (seed, e).

    Batch number ``step`` is ``perm_e[k * B : (k + 1) * B]`` with ``(e, k) = divmod(step, n)``,
    ``n = len(dataset) // B`` (the last incomplete batch is dropped).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int):
        self.dataset, self.seed = dataset, seed
        self.batch_size = min(batch_size, len(dataset))
        self.n_batches = len(dataset) // self.batch_size
        self._epoch, self._perm = -1, None

    def position(self, step: int) -> tuple[int, int]:
        return divmod(step, self.n_batches)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator()
            gen.manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(len(self.dataset), generator=gen), epoch
        return self._perm

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        epoch, k = self.position(step)
        idx = self._permutation(epoch)[k * self.batch_size : (k + 1) * self.batch_size]
        if isinstance(self.dataset, TensorDictDataset):
            return {name: t[idx] for name, t in self.dataset.tensors.items()}
        return default_collate([self.dataset[int(i)] for i in idx])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        step = 0
        while True:
            yield self.batch(step)
            step += 1


def _first_items(data, n: int) -> torch.Tensor:
    """The inputs x of the first `n` items of a dataset (all of them when it has fewer)."""
    n = min(n, len(data))
    if isinstance(data, TensorDictDataset):
        return data.tensors["x"][:n]
    return default_collate([data[i] for i in range(n)])["x"]


class _BestOnValidation:
    """The validation ELBO every ``eval_every`` steps: best weights, plateau, resumable state.

    The ELBO is the mean over the first ``val_items`` validation items, evaluated in eval mode
    under a forked RNG seeded with the run's seed, so the same weights always get the same value
    and training's own random stream is untouched.
    """

    def __init__(
        self,
        loaders: dict[str, Any],
        tc,
        device: torch.device,
        folder: Path | None,
        fit_items: int = 0,
    ):
        self.tc, self.device, self.folder = tc, device, folder
        self.enabled = tc.eval_every > 0
        self.value, self.step, self.stale = -math.inf, None, 0
        self.weights: dict[str, torch.Tensor] | None = None
        # the objective's state (its critics) at the best step, restored with the weights
        self.objective_state: dict[str, torch.Tensor] | None = None
        self.x = None
        if self.enabled:
            val = loaders.get("val")
            if val is None or len(val.dataset) == 0:
                raise ValueError(
                    "train.eval_every > 0 needs a non-empty 'val' loader; set train.eval_every=0 "
                    "or give the dataset a validation split (data.val_fraction > 0)"
                )
            self.x = _first_items(val.dataset, tc.val_items)
        # training items a monitor fits its fresh critic on (objective.monitor_fit_items)
        self.x_fit = _first_items(loaders["train"].dataset, fit_items) if fit_items else None

    @torch.no_grad()
    def elbo(self, model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        total = 0.0
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.tc.seed)
            for chunk in self.x.split(256):
                total += float(model(chunk.to(self.device)).elbo.sum())
        model.train(was_training)
        return total / len(self.x)

    def update(self, model: nn.Module, done: int, objective: nn.Module) -> dict[str, float]:
        """Evaluate; keep the weights, and the objective's critics of the same step, when they
        are the best so far. Returns logged terms."""
        value = self.elbo(model)
        if value > self.value:
            self.value, self.step, self.stale = value, done, 0
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            # deep: a critic's state holds more than tensors (its replay buffer, extra state)
            self.objective_state = copy.deepcopy(objective.state_dict())
            if self.folder is not None:
                save_checkpoint(
                    self.folder / "best.pt", cfg=self.cfg, step=done, model=self.weights,
                    objective=self.objective_state,
                )  # fmt: skip
        else:
            self.stale += 1
        return {"val_elbo": value, "best_val_elbo": self.value}

    @property
    def plateaued(self) -> bool:
        return self.enabled and self.tc.patience > 0 and self.stale >= self.tc.patience

    def state(self) -> dict[str, Any]:
        return {"value": self.value, "step": -1 if self.step is None else self.step,
                "stale": self.stale}  # fmt: skip

    def restore(self, state: dict[str, Any] | None) -> None:
        if not self.enabled or not state:
            return
        self.value, self.stale = float(state["value"]), int(state["stale"])
        self.step = None if int(state["step"]) < 0 else int(state["step"])
        best = self.folder / "best.pt" if self.folder is not None else None
        if self.step is not None and best is not None and best.exists():
            payload = load_checkpoint(best)
            self.weights, self.objective_state = payload["model"], payload.get("objective")


def _check_finite(terms: dict[str, float], step: int, last_ckpt: Path | None) -> None:
    for name, value in terms.items():
        if not math.isfinite(value):
            kept = f"; last good checkpoint: {last_ckpt}" if last_ckpt else ""
            raise FloatingPointError(
                f"non-finite loss term '{name}' = {value} at step {step}; training stopped{kept}"
            )


def _prune(folder: Path, keep: int) -> None:
    def step_of(p: Path) -> int:
        return int("".join(ch for ch in p.stem if ch.isdigit()) or -1)

    files = sorted(folder.glob("step_*.pt"), key=step_of)
    for old in files[:-keep]:
        old.unlink(missing_ok=True)


def fit(
    model: nn.Module,
    objective: nn.Module,
    loaders: dict[str, Any],
    cfg,
    run_dir: str | Path | None = None,
    *,
    resume: bool = True,
    callbacks: list[Callable[..., None]] | None = None,
) -> History:
    """Train `model` under `objective` for ``cfg.train.steps`` steps.

    Parameters
    ----------
    model : a SequentialVAE returning VAEOutput.
    objective : from paperlib.training.regularizers.build_objective (owns critics and their optimiser).
    loaders : from paperlib.data.make_loaders; only ``loaders["train"].dataset`` and its batch
        size are used (batches are drawn by a resumable `BatchStream`).
    cfg : the run's Config (``cfg.train`` drives the loop; the whole config is checkpointed).
    run_dir : where history.csv and checkpoints/step_XXXXXXX.pt go; None trains in memory.
    resume : continue from the newest valid checkpoint in run_dir (corrupted ones are skipped
        with a warning naming them).
    callbacks : called after every step as ``cb(step=..., terms=..., model=..., objective=...)``
        (step = number of completed steps).

    Returns
    -------
    History

    Raises
    ------
    FloatingPointError
        When a loss term or the gradient norm is NaN or inf; names the term and the step. No
        checkpoint is written after it, so the last good one stays the newest.
    paperlib.records.RunLocked
        When another process trains `run_dir` and ``$PAPERLIB_LOCK_WAIT`` seconds have passed
        (0: at once); the message names the holder (pid, host, since when).
    """
    tc = cfg.train
    # the lock first: a run that waits for another trainer claims no threads meanwhile
    lock = run_lock(run_dir) if run_dir is not None else contextlib.nullcontext()
    with lock, ThreadClaim(tc.num_threads):
        return _fit(model, objective, loaders, cfg, run_dir, resume=resume, callbacks=callbacks)


def _fit(model, objective, loaders, cfg, run_dir, *, resume, callbacks) -> History:
    tc = cfg.train
    seed_everything(tc.seed)
    device = get_device(tc.device)
    optimizer = _prepare(model, objective, tc, device)
    stream = BatchStream(loaders["train"].dataset, loaders["train"].batch_size, tc.seed)
    ckpt_dir = Path(run_dir) / "checkpoints" if run_dir is not None else None
    fit_items = getattr(getattr(objective, "cfg", None), "monitor_fit_items", 0)
    best = _BestOnValidation(loaders, tc, device, ckpt_dir, fit_items=fit_items)
    best.cfg = cfg
    start, last_ckpt, prior_seconds, stopped = 0, None, 0.0, False
    if ckpt_dir is not None and resume:
        start, last_ckpt, prior_seconds, stopped = _resume(
            ckpt_dir, cfg, model, optimizer, objective, best
        )
    history, writer = _open_history(run_dir, start, last_ckpt)

    def save(done: int, stopped_early: bool = False) -> Path:
        epoch, k = stream.position(done)
        path = save_checkpoint(
            ckpt_dir / f"step_{done:07d}.pt",
            cfg=cfg,
            step=done,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            objective=objective.state_dict(),
            data_position={"epoch": epoch, "batch": k, "seed": tc.seed},
            train_seconds=prior_seconds + time.perf_counter() - t0,
            best=best.state(),
            stopped_early=stopped_early,
        )
        _prune(ckpt_dir, KEEP_CHECKPOINTS)
        return path

    bar = progress_bar(total=tc.steps, initial=start, desc="fit", disable=not tc.progress)
    t0 = time.perf_counter()
    terms: dict[str, float] = (
        {k: v for k, v in history.rows[-1].items() if k != "step"} if history.rows else {}
    )
    try:
        for step in range(start, tc.steps if not stopped else start):
            x = stream.batch(step)["x"].to(device)
            terms = _step(model, objective, optimizer, x, step, tc, device, last_ckpt)
            done = step + 1
            validated = best.enabled and (done % tc.eval_every == 0 or done == tc.steps)
            if validated:
                stopped = _validate(model, objective, best, done, tc, device, terms)
            # a validation step is always logged: its ELBO, monitor and critic burst would
            # otherwise be lost off the log_every grid (step 50 of a log_every=20 run)
            if validated or done % tc.log_every == 0 or done == tc.steps or stopped:
                history.rows.append({"step": done, **terms})
                if writer is not None:
                    writer.log(done, terms)
                bar.set_postfix({k: f"{terms[k]:.3g}" for k in POSTFIX_KEYS if k in terms})
            if ckpt_dir is not None and (
                (tc.checkpoint_every and done % tc.checkpoint_every == 0)
                or done == tc.steps
                or stopped
            ):
                last_ckpt = save(done, stopped_early=stopped)
                if stopped:
                    (ckpt_dir / STOPPED_MARKER).write_text(f"{done}\n")
            history.steps = done
            for cb in callbacks or ():
                cb(step=done, terms=terms, model=model, objective=objective)
            bar.update(1)
            if stopped:  # the validation ELBO plateaued: the best weights are kept below
                break
    finally:
        bar.close()
        history.train_seconds = prior_seconds + time.perf_counter() - t0
    history.final = dict(terms)
    history.checkpoint = last_ckpt
    if ckpt_dir is not None and getattr(objective, "final_other", None) is not None:
        torch.save(objective.final_other, ckpt_dir / OTHER_FAMILY_FILE)
    history.stopped_early = stopped
    if best.enabled and best.weights is not None:
        # the model leaves fit() with the weights of its best validation ELBO, and the
        # objective with its critics of that step (they were trained against that encoder)
        model.load_state_dict(best.weights)
        history.best_step, history.best_val_elbo = best.step, best.value
        if best.objective_state is not None:
            objective.load_state_dict(best.objective_state)
        elif best.step != history.steps and any(True for _ in objective.parameters()):
            history.critic_at_best = False
    history.other_family = saved_other_family(ckpt_dir, history)
    return history


#: the last monitor's other-family critic, beside the checkpoints (`History.other_family`)
OTHER_FAMILY_FILE = "other_family.pt"


def saved_other_family(ckpt_dir: Path | None, history: History) -> dict[str, Any] | None:
    """The run's saved last-monitor critic (`OTHER_FAMILY_FILE`) when it was fitted on the
    encoder of the weights the model now holds (its best step, or its last without
    validation); else None, and evaluation fits its own."""
    path = ckpt_dir / OTHER_FAMILY_FILE if ckpt_dir is not None else None
    if path is None or not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    held = history.best_step if history.best_step is not None else history.steps
    return saved if int(saved["step"]) == held else None


def _prepare(model: nn.Module, objective: nn.Module, tc, device: torch.device):
    """Model and objective on `device`, checked to share no parameter; the model's optimiser."""
    model.to(device)
    objective.to(device)
    critic_ids = {id(p) for p in objective.parameters()}
    if any(id(p) in critic_ids for p in model.parameters()):
        raise ValueError("objective and model share parameters; critics must be separate modules")
    if tc.precision == "bf16" and device.type == "cpu" and not has_amx():
        warnings.warn(
            "train.precision='bf16' on a CPU without AMX (no amx_bf16 in /proc/cpuinfo): bf16 "
            "autocast runs slower than fp32 here; use precision='fp32'",
            stacklevel=4,
        )
    return torch.optim.Adam(model.parameters(), lr=tc.lr)


def _resume(ckpt_dir: Path, cfg, model, optimizer, objective, best: _BestOnValidation):
    """Load the newest valid checkpoint of `ckpt_dir` into the model, optimiser, objective, RNGs
    and `best`; (steps done, its path, train seconds so far, whether it stopped early), or
    (0, None, 0.0, False) when there is none. Refuses one written with other model or objective
    settings."""
    path, payload, skipped = latest_valid_checkpoint(ckpt_dir)
    for bad, reason in skipped:
        warnings.warn(f"skipped corrupted checkpoint {bad}: {reason}", stacklevel=3)
    if payload is None:
        return 0, None, 0.0, False
    for block in ("model", "objective"):
        # fields added since the checkpoint was written count only where this run
        # reads them (paperlib.config.identity)
        if identity(payload["config"])[block] != cfg.identity()[block]:
            raise ValueError(
                f"checkpoint {path} was written with a different '{block}' config; "
                "use another run_dir or resume=False"
            )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    objective.load_state_dict(payload["objective"])
    set_rng_state(payload["rng"])
    best.restore(payload.get("best"))
    prior_seconds = float(payload.get("train_seconds", 0.0))
    return int(payload["step"]), path, prior_seconds, bool(payload.get("stopped_early", False))


def _open_history(run_dir, start: int, last_ckpt: Path | None):
    """The History of a run resumed at `start` (its rows read back from history.csv) and the
    writer that appends to that file (None when training in memory)."""
    history = History(steps=start, checkpoint=last_ckpt)
    if run_dir is None:
        return history, None
    hist_path = Path(run_dir) / "history.csv"
    if start > 0 and hist_path.exists():
        history.rows = _read_history(hist_path, start)
    return history, HistoryWriter(hist_path, resume_step=start if start > 0 else None)


def _step(model, objective, optimizer, x, step: int, tc, device, last_ckpt) -> dict[str, float]:
    """One training step in the adversarial order: the model's loss (with the critics'
    estimates) -> backward -> model step; then the critics' step on detached z and s.
    Returns the step's loss terms; raises FloatingPointError on a non-finite one."""
    model.train()
    objective.train()
    with autocast(device, tc.precision):
        out = model(x)
        loss, terms = objective.model_loss(out, step)
    _check_finite(terms, step, last_ckpt)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if tc.grad_clip > 0:
        gnorm = float(nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip))
        _check_finite({"grad_norm": gnorm}, step, last_ckpt)
        terms["grad_norm"] = gnorm
    optimizer.step()
    with autocast(device, tc.precision):
        critic_terms = objective.critic_step(out)
    _check_finite(critic_terms, step, last_ckpt)
    terms.update(critic_terms)
    return terms


def _validate(model, objective, best: _BestOnValidation, done: int, tc, device, terms) -> bool:
    """The validation ELBO after `done` steps (and the objective's critic monitor, where it has
    one) added to `terms`; whether it has plateaued (training stops)."""
    terms.update(best.update(model, done, objective))
    stopped = best.plateaued
    monitor = getattr(objective, "monitor", None)
    refresh = getattr(objective, "refresh", None)
    x_fit = None if best.x_fit is None else best.x_fit.to(device)
    x_val = best.x.to(device)
    if monitor is not None:
        # the training critic beside a fresh critic of another family (cmi)
        final = done == tc.steps or stopped
        terms.update(monitor(model, x_val, done, final=final, x_fit=x_fit))
    if refresh is not None:
        # after the monitor read it: the critic's catch-up burst on the current encoder (cmi)
        terms.update(refresh(model, done, x_fit, x_read=x_val))
    return stopped


def _read_history(path: Path, upto: int) -> list[dict[str, float]]:
    """Rows of a long-format history.csv up to step `upto`, as one dict per step."""
    rows: dict[int, dict[str, float]] = {}
    for r in HistoryWriter.read(path):
        step = int(r["step"])
        if step <= upto:
            rows.setdefault(step, {"step": step})[r["key"]] = float(r["value"])
    return [rows[k] for k in sorted(rows)]


__all__ = ["BatchStream", "History", "fit"]
