"""The base class of the sequential VAEs (the output type is paperlib.outputs.VAEOutput).

Notation (DESIGN section 1): x = x_1..x_T, a global latent z ~ p(z) = N(0, I) and local features
s_t. For the DSAE s_t is a stochastic latent with its own prior; for the PixelCNN-VAE s_t = h(x_<t)
is the z-free context stack's hidden state. Losses, estimators, regularizers and evaluation only
see `VAEOutput`, so none of them asks which model it has.
"""

from __future__ import annotations

from torch import Tensor, nn

from paperlib.outputs import VAEOutput


class SequentialVAE(nn.Module):
    """Base class: a sequential VAE with a global z and local features s.

    Subclasses implement `encode` and `forward`, and may implement `iw_log_px` and `sample`.
    """

    z_dim: int
    s_dim: int

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(z_mean, z_logvar), each (B, Dz)."""
        raise NotImplementedError

    def forward(self, x: Tensor, z: Tensor | None = None) -> VAEOutput:
        """Encode, sample z (unless given), compute s and the ELBO terms."""
        raise NotImplementedError

    def iw_log_px(self, x: Tensor, n_samples: int) -> Tensor:
        """(B,) importance-weighted lower bound on log p(x) with `n_samples` samples, in nats."""
        raise NotImplementedError(f"{type(self).__name__} has no importance-weighted bound")
