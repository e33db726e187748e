"""Benchmark: cached vs naive autoregressive sampling of the PixelCNN-VAE.

The quick-profile image model (``load("quick", "images")``: 28x28 binarized MNIST-5k, z_dim 16,
s_dim 32, hidden 32, 5 gated layers, kernel 3), a batch of 64 z ~ N(0, I), 2 torch threads, CPU.
Prints the time of `PixelCNNVAE.sample` (cached: each activation computed once per image) and of
`PixelCNNVAE.sample_naive` (one full forward pass per pixel), the speed-up, and whether the two
gave identical images from the same generator seed.

Usage::

    python benchmarks/sampling.py                  # full naive run (a few minutes on 2 cores)
    python benchmarks/sampling.py --naive-rows 4   # naive on the first 4 rows, extrapolated

Every naive step is one full forward pass of identical cost, so timing the first rows and
scaling by H / rows is a faithful estimate; the output says when it was extrapolated.
"""

from __future__ import annotations

import argparse
import time

import torch

from paperlib.config import load
from paperlib.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--naive-rows", type=int, default=None, help="rows of the naive run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cfg = load("quick", "images")
    C, S = cfg.model.in_channels, cfg.model.image_size
    model = build_model(cfg.model, {"x_shape": (C, S, S), "binarized": True, "n_classes": 10})
    model.eval()
    z = torch.randn(args.batch, cfg.model.z_dim, generator=torch.Generator().manual_seed(1))
    print(
        f"model: quick images preset, x_shape {(C, S, S)}, batch {args.batch}, "
        f"threads {args.threads}, receptive field {tuple(model.receptive_field)}"
    )

    model.sample(z[:2], torch.Generator().manual_seed(args.seed))  # warm-up
    t0 = time.perf_counter()
    x_cached = model.sample(z, torch.Generator().manual_seed(args.seed))
    t_cached = time.perf_counter() - t0
    print(f"cached sampling: {t_cached:.2f} s")

    rows = S if args.naive_rows is None else min(args.naive_rows, S)
    t0 = time.perf_counter()
    x_naive = model.sample_naive(z, torch.Generator().manual_seed(args.seed), n_rows=rows)
    t_naive = (time.perf_counter() - t0) * S / rows
    how = "measured" if rows == S else f"extrapolated from {rows} of {S} rows"
    print(f"naive sampling:  {t_naive:.2f} s ({how})")
    print(f"speed-up:        {t_naive / t_cached:.1f}x")
    same = torch.equal(x_cached[:, :, :rows], x_naive[:, :, :rows])
    print(f"identical samples on the {rows} naive rows: {same}")


if __name__ == "__main__":
    main()
