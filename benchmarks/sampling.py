"""Benchmark: cached vs naive autoregressive sampling of the PixelCNN-VAE.

The quick-profile image model (``load("quick", "images")``: 14x14 binarized MNIST-5k, z_dim 16,
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


def time_sampling(
    batch: int = 64, naive_rows: int | None = None, seed: int = 0, threads: int | None = None
) -> dict:
    """Time cached and naive sampling of the quick-profile image model.

    Returns ``{"x_shape", "batch", "cached_s", "naive_s", "naive_rows", "naive_extrapolated",
    "speedup", "identical"}``; ``naive_s`` is scaled by H / naive_rows when fewer rows ran.
    """
    if threads:
        torch.set_num_threads(threads)
    cfg = load("quick", "images")
    # the model's x_shape comes from the data: binarized 1-channel images, downsampled to
    # data.image_size (0 = native 28x28 MNIST)
    C, S = 1, cfg.data.image_size or 28
    model = build_model(cfg.model, {"x_shape": (C, S, S), "binarized": True, "n_classes": 10})
    model.eval()
    z = torch.randn(batch, cfg.model.z_dim, generator=torch.Generator().manual_seed(1))

    model.sample(z[:2], torch.Generator().manual_seed(seed))  # warm-up
    t0 = time.perf_counter()
    x_cached = model.sample(z, torch.Generator().manual_seed(seed))
    t_cached = time.perf_counter() - t0

    rows = S if naive_rows is None else max(1, min(naive_rows, S))
    t0 = time.perf_counter()
    x_naive = model.sample_naive(z, torch.Generator().manual_seed(seed), n_rows=rows)
    t_naive = (time.perf_counter() - t0) * S / rows
    return {
        "x_shape": [C, S, S],
        "batch": batch,
        "receptive_field": list(model.receptive_field),
        "cached_s": t_cached,
        "naive_s": t_naive,
        "naive_rows": rows,
        "naive_extrapolated": rows != S,
        "speedup": t_naive / t_cached,
        "identical": bool(torch.equal(x_cached[:, :, :rows], x_naive[:, :, :rows])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--naive-rows", type=int, default=None, help="rows of the naive run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    r = time_sampling(args.batch, args.naive_rows, args.seed, args.threads)
    print(
        f"model: quick images preset, x_shape {tuple(r['x_shape'])}, batch {r['batch']}, "
        f"threads {args.threads}, receptive field {tuple(r['receptive_field'])}"
    )
    print(f"cached sampling: {r['cached_s']:.2f} s")
    S = r["x_shape"][1]
    how = (
        f"extrapolated from {r['naive_rows']} of {S} rows"
        if r["naive_extrapolated"]
        else "measured"
    )
    print(f"naive sampling:  {r['naive_s']:.2f} s ({how})")
    print(f"speed-up:        {r['speedup']:.1f}x")
    print(f"identical samples on the {r['naive_rows']} naive rows: {r['identical']}")


if __name__ == "__main__":
    main()
