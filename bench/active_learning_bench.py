"""Active learning with the built-in classifier: labels needed to reach a held-out accuracy when the
next tasks are the most uncertain ones (lowest max probability) versus random ones.

    .venv/bin/python bench/active_learning_bench.py [--seeds 1-6] [--target 0.8] [--batch 20]

Synthetic dataset: 4 classes, short documents with one to three class words (Zipf-distributed over 60
per class) among filler words; 800 in the pool, 400 held out. Prints one row per seed and the mean.
"""

from __future__ import annotations

import argparse
import statistics
import time

from workspace.ml.simulation import labels_to_reach, synthetic_dataset


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-", 1)
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1-6")
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--budget", type=int, default=600)
    args = parser.parse_args()
    print(f"labels needed to reach {args.target:.0%} held-out accuracy (batches of {args.batch})")
    print(f"{'seed':>4}  {'uncertainty':>11}  {'random':>6}  {'saved':>6}  {'seconds':>7}")
    pairs = []
    for seed in _seeds(args.seeds):
        started = time.perf_counter()
        data = synthetic_dataset(seed)
        u = labels_to_reach(data, "uncertainty", target=args.target, seed=seed, batch=args.batch, budget=args.budget)
        r = labels_to_reach(data, "random", target=args.target, seed=seed, batch=args.batch, budget=args.budget)
        saved = f"{1 - u.labels / r.labels:.0%}" if u.labels and r.labels else "-"
        print(f"{seed:>4}  {u.labels or 'n/a':>11}  {r.labels or 'n/a':>6}  {saved:>6}  {time.perf_counter() - started:>7.1f}")
        if u.labels and r.labels:
            pairs.append((u.labels, r.labels))
    if pairs:
        mu, mr = statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs)
        print(f"mean  {mu:>11.0f}  {mr:>6.0f}  {1 - mu / mr:>6.0%}")


if __name__ == "__main__":
    main()
