"""Disentangled Sequential Autoencoder (DSAE) on log-mel frames.

Li & Mandt, "Disentangled Sequential Autoencoder", ICML 2018 (arXiv:1803.02991), section 2-3.
Generative model, with x = x_1..x_T log-mel frames, a global z and local s_1..s_T::

    p(x, z, s) = p(z) prod_t p(s_t | s_<t) p(x_t | z, s_t),      p(z) = N(0, I)

- p(s_t | s_<t): an LSTM over s_1..s_{t-1} with a Gaussian head; p(s_1) comes from the LSTM's
  learned initial state (a zero input at step 1).
- p(x_t | z, s_t): an MLP on [z, s_t] giving the mean of a Gaussian over the n_mels bins. Its
  log-variance is one value per mel bin, fitted (the default) or fixed (``decoder_logvar``);
  a fitted variance makes log p(x|z,s) a proper density in nats whose scale the model fits,
  instead of a squared error whose weight against the KL terms is an arbitrary choice.
  ``decoder_variance`` says how it is fitted. ``"ml"`` (the default): its maximum-likelihood
  value given the decoder's means, sigma_f^2 = mean squared residual of bin f, kept as a running
  average over training batches (a calibrated decoder; Rybkin et al., "Simple and Effective VAE
  Training with Calibrated Decoders", ICML 2021). ``"gradient"``: a parameter moved by the
  optimiser. Both have the same optimum, but Adam moves a parameter by about its learning rate a
  step: at lr 2e-3 the log-variance had reached -0.68 after 300 steps where the residuals' was
  -3.03, an ELBO 1,857 nats/sequence below the same means at their ML variance, so every run
  was still climbing at its last step (docs/DESIGN.md section 1, "The DSAE's decoder variance").
- q(z | x_1:T): a bi-LSTM over the frames, its outputs mean-pooled over time -> Gaussian.
  (Li & Mandt use the final states; the mean pool sees every frame equally, which suits a
  global factor such as the speaker.)
- q(s | x), selected by ``posterior``:

  ``"factorized"``: q(s | x) = prod_t q(s_t | x_t), a per-frame MLP. Then z and s are
  conditionally independent given x, I(z; s | x) = 0, and the chain rule gives exactly

      I(x; z | s) = I(x; z) - I(z; s),

  which is the identity the ``cmi`` objective (ELBO + alpha I(x;z) - beta I(z;s), alpha = beta)
  relies on to equal ELBO + alpha I(x; z | s).

  ``"full"``: q(s_1:T | x_1:T, z) as in DSAE: a bi-LSTM over [x_t, z] whose outputs feed a
  forward GRU with a Gaussian head per step. Here s depends on z given x, so I(z; s | x) > 0 in
  general and only the full chain rule I(x; z | s) = I(x; z) - I(z; s) + I(z; s | x) holds:
  ``cmi`` then penalises I(z; s) as a disentanglement term; ELBO + alpha I(x;z) - alpha I(z;s)
  is ELBO + alpha I(x; z | s) - alpha I(z; s | x), not exactly the CMI objective.

KL_s = sum_t E_q[log q(s_t | .) - log p(s_t | s_<t)] is estimated with one sample of s: for each
step the KL between q(s_t | .) and the prior given the *sampled* s_<t is taken in closed form.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from paperlib.gaussian import (
    gaussian_kl,
    gaussian_kl_std_normal,
    gaussian_log_prob,
    reparameterize,
)
from paperlib.models import MODELS
from paperlib.models.base import SequentialVAE
from paperlib.outputs import VAEOutput

POSTERIORS = ("factorized", "full")
DECODER_VARIANCES = ("ml", "gradient")
# The ML variance's running average: sigma^2 <- m sigma^2 + (1 - m) mean_(b,t) (x - mu)^2, over
# about the last 1 / (1 - m) = 10 training batches
ML_VARIANCE_MOMENTUM = 0.9

# Bounds on every predicted log-variance: wide enough not to bind in normal training, tight
# enough that exp(logvar) neither underflows to 0 nor overflows in float32.
LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0
# The decoder's per-bin log-variance is kept above this (std >= ~0.02 on normalised log-mels), so
# a learned variance cannot collapse onto a few perfectly reconstructed frames.
DEC_LOGVAR_MIN = -8.0


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """Two hidden layers with LeakyReLU; acts on the last dim, so it also works per frame."""
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, d_out),
    )


def _gaussian_head(params: Tensor) -> tuple[Tensor, Tensor]:
    """Split (..., 2D) into (mean, logvar), each (..., D), with the log-variance clamped."""
    mean, logvar = params.chunk(2, dim=-1)
    return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


@MODELS.register("dsae")
class DSAE(SequentialVAE):
    """Disentangled Sequential Autoencoder (Li & Mandt 2018) with a global z and local s_t.

    Parameters
    ----------
    n_mels : int
        Feature bins per frame (the last dim of x).
    z_dim, s_dim : int
        Sizes of the global latent z and of each local latent s_t.
    hidden : int
        Width of every LSTM/GRU state and MLP hidden layer.
    posterior : {"factorized", "full"}
        q(s | x) = prod_t q(s_t | x_t), or q(s_1:T | x_1:T, z) as in DSAE (see module docstring
        for which mutual-information identity each relies on).
    decoder_logvar : float or None
        None (default): a fitted log-variance per mel bin (kept >= DEC_LOGVAR_MIN). A float:
        that fixed log-variance for every bin.
    decoder_variance : {"ml", "gradient"}
        How the fitted variance is fitted (module docstring): its maximum-likelihood value,
        a running average of the squared residuals of training batches, or by the optimiser.
    n_frames : int or None
        Default sequence length for `sample` (the dataset's T); other lengths work everywhere.

    Notes
    -----
    ``forward(x)`` returns `VAEOutput` with s the sampled local latents (B, T, Ds), log_px summed
    over frames and mels, and x_params the decoder means (B, T, n_mels).
    """

    def __init__(
        self,
        n_mels: int,
        z_dim: int,
        s_dim: int,
        hidden: int,
        posterior: str = "factorized",
        decoder_logvar: float | None = None,
        n_frames: int | None = None,
        decoder_variance: str = "ml",
    ):
        super().__init__()
        for name, value in (("n_mels", n_mels), ("z_dim", z_dim), ("s_dim", s_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DSAE: {name} must be a positive int, got {value!r}")
        if not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"DSAE: hidden must be a positive int, got {hidden!r}")
        if posterior not in POSTERIORS:
            raise ValueError(
                f"DSAE: posterior {posterior!r} is not accepted; choose one of {list(POSTERIORS)}"
            )
        if decoder_variance not in DECODER_VARIANCES:
            raise ValueError(
                f"DSAE: decoder_variance {decoder_variance!r} is not accepted; choose one of "
                f"{list(DECODER_VARIANCES)}"
            )
        self.n_mels, self.z_dim, self.s_dim, self.hidden = n_mels, z_dim, s_dim, hidden
        self.posterior = posterior
        # the ML running average updates dec_logvar; a fixed or gradient-fitted one does not
        self.ml_variance = decoder_logvar is None and decoder_variance == "ml"
        self.n_frames = n_frames

        # q(z | x_1:T): bi-LSTM, mean over time, Gaussian head.
        self.z_rnn = nn.LSTM(n_mels, hidden, batch_first=True, bidirectional=True)
        self.z_head = nn.Linear(2 * hidden, 2 * z_dim)

        # q(s | x): per-frame MLP, or bi-LSTM over [x_t, z] followed by a forward GRU.
        if posterior == "factorized":
            self.s_frame = _mlp(n_mels, hidden, 2 * s_dim)
        else:
            self.s_birnn = nn.LSTM(n_mels + z_dim, hidden, batch_first=True, bidirectional=True)
            self.s_rnn = nn.GRU(2 * hidden, hidden, batch_first=True)
            self.s_head = nn.Linear(hidden, 2 * s_dim)

        # p(s_t | s_<t): LSTM with a learned initial state (which alone gives p(s_1)).
        self.prior_rnn = nn.LSTM(s_dim, hidden, batch_first=True)
        self.prior_h0 = nn.Parameter(torch.zeros(1, 1, hidden))
        self.prior_c0 = nn.Parameter(torch.zeros(1, 1, hidden))
        self.prior_head = nn.Linear(hidden, 2 * s_dim)

        # p(x_t | z, s_t): MLP mean, per-bin log-variance.
        self.decoder = _mlp(z_dim + s_dim, hidden, n_mels)
        if decoder_logvar is None and decoder_variance == "gradient":
            self.dec_logvar = nn.Parameter(torch.zeros(n_mels))
        elif decoder_logvar is None:
            # starts at the variance of standardised features, 1; `_fit_ml_variance` moves it
            self.register_buffer("dec_logvar", torch.zeros(n_mels))
        else:
            self.register_buffer("dec_logvar", torch.full((n_mels,), float(decoder_logvar)))

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, model_cfg, data_info: dict) -> DSAE:
        """Build from a `ModelConfig` and a speech dataset's info (``x_shape`` = (T, n_mels))."""
        shape = data_info.get("x_shape")
        if shape is None or len(shape) != 2:
            raise ValueError(
                "DSAE needs data_info['x_shape'] = (n_frames, n_mels) of a speech-like dataset, "
                f"got {shape!r}"
            )
        n_frames, n_mels = int(shape[0]), int(shape[1])
        return cls(
            n_mels=n_mels,
            z_dim=model_cfg.z_dim,
            s_dim=model_cfg.s_dim,
            hidden=model_cfg.hidden,
            posterior=model_cfg.posterior,
            n_frames=n_frames,
            decoder_variance=model_cfg.decoder_variance,
        )

    # ------------------------------------------------------------------------------------------
    def _check_x(self, x: Tensor, name: str = "x") -> None:
        if x.dim() != 3 or x.shape[-1] != self.n_mels:
            raise ValueError(
                f"DSAE: {name} must be (B, T, n_mels={self.n_mels}) frames, got {tuple(x.shape)}"
            )

    def _decoder_logvar(self) -> Tensor:
        """(n_mels,) decoder log-variance, bounded below when fitted."""
        return self.dec_logvar.clamp(DEC_LOGVAR_MIN, LOGVAR_MAX)

    def _fit_ml_variance(self, x: Tensor, x_mean: Tensor) -> None:
        """Move the ML decoder variance towards this batch's, on a training step only (training
        mode with gradients on: a monitor's or an evaluation's forward leaves it as it is)."""
        if not (self.ml_variance and self.training and torch.is_grad_enabled()):
            return
        with torch.no_grad():
            # sigma_f^2 = argmax_sigma sum_(b,t) log N(x_btf; mu_btf, sigma^2)
            #           = mean_(b,t) (x_btf - mu_btf)^2
            mse = (x - x_mean).pow(2).flatten(0, -2).mean(0)  # (F,)
            m = ML_VARIANCE_MOMENTUM
            # sigma^2 <- m sigma^2 + (1 - m) mse, held as its log
            self.dec_logvar.copy_((m * self.dec_logvar.exp() + (1.0 - m) * mse).log())

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x_1:T): (z_mean, z_logvar), each (B, Dz)."""
        self._check_x(x)
        h, _ = self.z_rnn(x)  # (B, T, 2H)
        # mean over time: every frame contributes to the global code
        return _gaussian_head(self.z_head(h.mean(dim=1)))  # (B, Dz) x2

    def encode_s(self, x: Tensor, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Parameters of q(s_t | .) for every t: (s_mean, s_logvar), each (B, T, Ds).

        ``z`` (B, Dz) is required for the "full" posterior q(s | x, z) and ignored otherwise.
        """
        self._check_x(x)
        if self.posterior == "factorized":
            # q(s_t | x_t): one MLP applied frame by frame
            return _gaussian_head(self.s_frame(x))  # (B, T, Ds) x2
        if z is None:
            raise ValueError("DSAE: the 'full' posterior q(s | x, z) needs z (B, z_dim)")
        zt = z.unsqueeze(1).expand(-1, x.shape[1], -1)  # (B, T, Dz)
        h, _ = self.s_birnn(torch.cat([x, zt], dim=-1))  # (B, T, 2H)
        g, _ = self.s_rnn(h)  # (B, T, H)
        return _gaussian_head(self.s_head(g))  # (B, T, Ds) x2

    def prior_s(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """p(s_t | s_<t) for every t given the sequence s (B, T, Ds): (mean, logvar), (B, T, Ds).

        Step t sees s_1..s_{t-1}; step 1 sees a zero input and the learned initial state.
        """
        B = s.shape[0]
        s_prev = torch.cat([s.new_zeros(B, 1, self.s_dim), s[:, :-1]], dim=1)  # (B, T, Ds)
        h0 = self.prior_h0.expand(1, B, self.hidden).contiguous()
        c0 = self.prior_c0.expand(1, B, self.hidden).contiguous()
        h, _ = self.prior_rnn(s_prev, (h0, c0))  # (B, T, H)
        return _gaussian_head(self.prior_head(h))

    def decode(self, z: Tensor, s: Tensor) -> Tensor:
        """Mean of p(x_t | z, s_t) for every t: (B, T, n_mels) from z (B, Dz) and s (B, T, Ds)."""
        if z.dim() != 2 or s.dim() != 3 or z.shape[0] != s.shape[0]:
            raise ValueError(
                f"DSAE.decode: z must be (B, z_dim) and s (B, T, s_dim), got {tuple(z.shape)} "
                f"and {tuple(s.shape)}"
            )
        zt = z.unsqueeze(1).expand(-1, s.shape[1], -1)  # (B, T, Dz)
        return self.decoder(torch.cat([zt, s], dim=-1))  # (B, T, n_mels)

    # ------------------------------------------------------------------------------------------
    def forward(
        self, x: Tensor, z: Tensor | None = None, generator: torch.Generator | None = None
    ) -> VAEOutput:
        """Encode, sample z (unless given) and s, and compute the ELBO terms (all in nats).

        Parameters
        ----------
        x : (B, T, n_mels) frames.
        z : optional (B, z_dim) value of z to use instead of a posterior sample.
        generator : optional torch.Generator (on x's device) for the reparameterisation noise.
        """
        z_mean, z_logvar = self.encode(x)  # (B, Dz)
        if z is None:
            z = reparameterize(z_mean, z_logvar, generator)
        elif z.shape != z_mean.shape:
            raise ValueError(f"DSAE: z must be {tuple(z_mean.shape)}, got {tuple(z.shape)}")
        s_mean, s_logvar = self.encode_s(x, z)  # (B, T, Ds)
        s = reparameterize(s_mean, s_logvar, generator)  # (B, T, Ds)
        p_mean, p_logvar = self.prior_s(s)  # (B, T, Ds)
        # KL_s = sum_t KL(q(s_t|.) || p(s_t|s_<t)), closed form per step given the sampled s_<t
        kl_s = gaussian_kl(s_mean, s_logvar, p_mean, p_logvar).sum(-1)  # (B,)
        # KL_z = KL(q(z|x) || N(0, I))
        kl_z = gaussian_kl_std_normal(z_mean, z_logvar)  # (B,)
        x_mean = self.decode(z, s)  # (B, T, F)
        self._fit_ml_variance(x, x_mean)
        # log p(x|z,s) = sum_t sum_f log N(x_tf; mu_tf, sigma_f^2)
        log_px = gaussian_log_prob(x, x_mean, self._decoder_logvar().expand_as(x)).sum(-1)
        return VAEOutput(
            z=z,
            z_mean=z_mean,
            z_logvar=z_logvar,
            s=s,
            log_px=log_px,
            kl_z=kl_z,
            kl_s=kl_s,
            x_params=x_mean,
        )

    def iw_log_px(
        self, x: Tensor, n_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """(B,) importance-weighted lower bound on log p(x) in nats (Burda et al. 2016, eq. 8).

        log p(x) >= E[log 1/K sum_k p(x, z_k, s_k) / q(z_k, s_k | x)],
        (z_k, s_k) ~ q(z | x) q(s | x, z_k) independently for k = 1..K.
        K = 1 is a single-sample ELBO; the bound tightens as K grows.
        """
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"DSAE.iw_log_px: n_samples must be a positive int, got {n_samples!r}")
        z_mean, z_logvar = self.encode(x)  # (B, Dz)
        dec_logvar = self._decoder_logvar().expand_as(x)
        log_w = []
        for _ in range(n_samples):
            z = reparameterize(z_mean, z_logvar, generator)  # (B, Dz)
            s_mean, s_logvar = self.encode_s(x, z)  # (B, T, Ds)
            s = reparameterize(s_mean, s_logvar, generator)
            p_mean, p_logvar = self.prior_s(s)
            # log w = log p(x|z,s) + log p(z) + log p(s) - log q(z|x) - log q(s|x,z)
            log_px = gaussian_log_prob(x, self.decode(z, s), dec_logvar).sum(-1)  # (B,)
            log_pz = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
            log_ps = gaussian_log_prob(s, p_mean, p_logvar).sum(-1)
            log_qz = gaussian_log_prob(z, z_mean, z_logvar)
            log_qs = gaussian_log_prob(s, s_mean, s_logvar).sum(-1)
            log_w.append(log_px + log_pz + log_ps - log_qz - log_qs)
        # log 1/K sum_k w_k
        return torch.stack(log_w).logsumexp(0) - math.log(n_samples)  # (B,)

    # ------------------------------------------------------------------------------------------
    def swap_z(self, x_content: Tensor, x_speaker: Tensor) -> Tensor:
        """Voice conversion: decode z of `x_speaker` with s of `x_content` -> (B, T, n_mels).

        z is the posterior mean of q(z | x_speaker); s is the posterior mean of q(s | x_content)
        (for the "full" posterior, q(s | x_content, z) at the content source's own z mean, so
        that s is what the model infers for that utterance). T is that of `x_content`.
        """
        self._check_x(x_content, "x_content")
        self._check_x(x_speaker, "x_speaker")
        if x_content.shape[0] != x_speaker.shape[0]:
            raise ValueError(
                "DSAE.swap_z: x_content and x_speaker need the same batch size, got "
                f"{x_content.shape[0]} and {x_speaker.shape[0]}"
            )
        z_speaker, _ = self.encode(x_speaker)  # (B, Dz)
        z_content = self.encode(x_content)[0] if self.posterior == "full" else None
        s_content, _ = self.encode_s(x_content, z_content)  # (B, T, Ds)
        return self.decode(z_speaker, s_content)

    @torch.no_grad()
    def sample(
        self,
        z: Tensor,
        n_frames: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Generate frames for each z (B, Dz): s_1:T from the prior p(s_t | s_<t), then decoder
        means (B, T, n_mels). T is ``n_frames`` or the dataset length given at construction."""
        T = n_frames if n_frames is not None else self.n_frames
        if T is None or T < 1:
            raise ValueError("DSAE.sample: pass n_frames (a positive int); none set at build")
        B = z.shape[0]
        state = (
            self.prior_h0.expand(1, B, self.hidden).contiguous(),
            self.prior_c0.expand(1, B, self.hidden).contiguous(),
        )
        s_prev = z.new_zeros(B, 1, self.s_dim)
        steps = []
        for _ in range(T):
            h, state = self.prior_rnn(s_prev, state)  # (B, 1, H)
            mean, logvar = _gaussian_head(self.prior_head(h))
            s_prev = reparameterize(mean, logvar, generator)  # (B, 1, Ds)
            steps.append(s_prev)
        return self.decode(z, torch.cat(steps, dim=1))
