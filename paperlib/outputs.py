"""The one output type every model returns (`VAEOutput`), at the bottom of the package.

Models (paperlib.models) build it; objectives, critics and evaluation read it. Keeping it here
rather than in paperlib.models.base lets those readers depend on the type without importing the
model package (docs/DESIGN.md, "Architecture"). paperlib.models re-exports it.

Notation (DESIGN section 1): x = x_1..x_T, a global latent z ~ p(z) = N(0, I) and local features
s_t. For the DSAE s_t is a stochastic latent with its own prior; for the PixelCNN-VAE s_t = h(x_<t)
is the z-free context stack's hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class VAEOutput:
    """What ``model(x)`` returns. B = batch, T = positions (frames or pixels in raster order).

    Attributes
    ----------
    z : (B, Dz) reparameterised sample of q(z|x).
    z_mean, z_logvar : (B, Dz) parameters of the Gaussian q(z|x).
    s : (B, T, Ds) local features: a sample of q(s|x, ...) (DSAE) or h(x_<t) (PixelCNN-VAE).
    log_px : (B,) log p(x | z, s) in nats, summed over positions and dimensions.
    kl_z : (B,) KL(q(z|x) || p(z)) in nats (closed form).
    kl_s : (B,) KL(q(s|...) || p(s)) in nats; zeros for the autoregressive model.
    x_params : decoder distribution parameters (logits or means), for plots; may be None.
    """

    z: Tensor
    z_mean: Tensor
    z_logvar: Tensor
    s: Tensor
    log_px: Tensor
    kl_z: Tensor
    kl_s: Tensor
    x_params: Tensor | None = None

    @property
    def elbo(self) -> Tensor:
        """(B,) ELBO = log p(x|z,s) - KL_z - KL_s, in nats."""
        return self.log_px - self.kl_z - self.kl_s

    def detached(self) -> VAEOutput:
        """A copy whose tensors carry no graph (what critics train on)."""
        return VAEOutput(
            **{k: (v.detach() if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        )

    @staticmethod
    def cat(outs: list[VAEOutput]) -> VAEOutput:
        """The outputs of several batches as one (rows concatenated; x_params kept when all have
        it)."""
        fields = {}
        for k in outs[0].__dict__:
            vs = [getattr(o, k) for o in outs]
            fields[k] = torch.cat(vs) if all(isinstance(u, Tensor) for u in vs) else None
        return VAEOutput(**fields)


__all__ = ["VAEOutput"]
