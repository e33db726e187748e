"""Accuracy of every MI estimator against I = -d/2 log(1 - rho^2) (DESIGN section 2).

Prints a table (estimator x d x rho: estimate, truth, relative error). Writes nothing unless
``--out PATH`` is given (then also a CSV there).

    python benchmarks/mi_accuracy.py [--n 5000] [--steps 2000] [--methods density_ratio,club]
"""

from __future__ import annotations

import argparse
import csv
import time

import torch

from paperlib.mi import ESTIMATORS, correlated_gaussians, estimate_mi, gaussian_mi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="paired samples per cell")
    ap.add_argument("--steps", type=int, default=2000, help="estimator training steps")
    ap.add_argument("--methods", default=",".join(ESTIMATORS.names()))
    ap.add_argument("--dims", default="1,4,8")
    ap.add_argument("--rhos", default="0.5,0.8,0.95")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="optional CSV path")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(
        f"{'estimator':14s} {'d':>2s} {'rho':>5s} {'estimate':>9s} {'truth':>7s} {'rel_err':>8s} {'sec':>5s}"
    )
    for method in args.methods.split(","):
        for d in (int(v) for v in args.dims.split(",")):
            for rho in (float(v) for v in args.rhos.split(",")):
                x, y = correlated_gaussians(args.n, d, rho, generator=1)
                t0 = time.perf_counter()
                est = estimate_mi(x, y, method, steps=args.steps)
                sec = time.perf_counter() - t0
                truth = gaussian_mi(rho, d)
                rel = (est - truth) / truth
                rows.append(
                    dict(estimator=method, d=d, rho=rho, estimate=est, truth=truth, rel_err=rel)
                )
                print(
                    f"{method:14s} {d:2d} {rho:5.2f} {est:9.3f} {truth:7.3f} {rel:+8.2f} {sec:5.1f}",
                    flush=True,
                )
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
