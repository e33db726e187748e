"""Presets: what each experiment trains in each profile, one small module per experiment.

- `speech` (DSAE; notebooks 00, 01, 03), `images` (PixelCNN-VAE; notebooks 02, 03), `toy`
  (linear-Gaussian, for tests) and `mechanism` (known factors; notebook 05) each hold their
  ``SMOKE``, ``QUICK`` and ``PAPER`` presets side by side: dicts of config blocks with only the
  values that differ from the dataclass defaults of ``paperlib.config``, a reason beside each;
- `sweep` holds notebook 03's weight grid and seeds, and the seeds that notebooks 01 and 02
  report on; `speech` the walkthrough's shrink and `mechanism` notebook 05's dials, what the
  notebooks' ``None`` parameters resolve to (``paperlib.suite.params``).

``paperlib.config.load(profile, experiment)`` builds and validates the Config from `PRESETS`.
This package is plain data: it imports nothing, not even ``paperlib.config``, so that the
config layer stays free of torch and of upward imports (docs/DESIGN.md, "Architecture").
A changed value changes the run folders' names (``records.config_hash``): finished runs of the
old value are not reused.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from paperlib.presets import images, mechanism, speech, sweep, toy

__all__ = ["EXPERIMENTS", "PRESETS", "images", "mechanism", "speech", "sweep", "toy"]

#: experiment -> the module holding its presets
EXPERIMENTS: dict[str, ModuleType] = {
    "speech": speech,
    "images": images,
    "toy": toy,
    "mechanism": mechanism,
}

#: (profile, experiment) -> the preset's config blocks, for every profile a module defines
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    (profile, name): getattr(module, profile.upper())
    for name, module in EXPERIMENTS.items()
    for profile in ("smoke", "quick", "paper")
    if hasattr(module, profile.upper())
}
