"""A measured comparison of active learning with the built-in classifier (used by the test and
``bench/active_learning_bench.py``): on a synthetic text dataset, how many labels does it take to
reach a target accuracy when the next tasks to label are the most uncertain ones (the lowest
prediction score, which is what "label next" with ``order = uncertainty`` hands out) versus random ones?

Each round trains :func:`workspace.ml.classifier.train` on the labeled pool, measures accuracy on a
held-out set, and labels ``batch`` more tasks chosen by the strategy. Everything is seeded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from workspace.ml import classifier

__all__ = ["Dataset", "Run", "synthetic_dataset", "labels_to_reach"]


@dataclass(frozen=True)
class Dataset:
    pool: list[tuple[str, str]]  # (text, label) to draw labels from
    test: list[tuple[str, str]]  # held out


@dataclass(frozen=True)
class Run:
    strategy: str
    labels: int | None  # labels needed to reach the target (None: never reached within the budget)
    curve: list[tuple[int, float]]  # (labels, accuracy) after each round


def synthetic_dataset(seed: int = 7, *, classes: int = 4, pool: int = 800, test: int = 400) -> Dataset:
    """Short "documents" of shared filler words and a few words typical of their class."""
    rng = random.Random(seed)
    names = [f"class{c}" for c in range(classes)]
    # Each class has many typical words whose frequencies follow Zipf's law: a few are common, most
    # are rare. A document has one to three of them among filler words, so its class is clear once
    # the model knows those words — and random labeling keeps showing it the common ones.
    size = 60
    typical = {n: [f"{n[-1]}w{i}" for i in range(size)] for n in names}
    weights = [1 / (i + 1) for i in range(size)]
    shared = [f"s{i}" for i in range(300)]

    def document(label: str) -> str:
        words = rng.choices(typical[label], weights, k=rng.randint(1, 3))
        words += [rng.choice(shared) for _ in range(rng.randint(6, 10))]
        rng.shuffle(words)
        return " ".join(words)

    def draw(n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            label = rng.choice(names)
            out.append((document(label), label))
        return out

    return Dataset(pool=draw(pool), test=draw(test))


def _accuracy(model: classifier.Model, test: list[tuple[str, str]]) -> float:
    predicted = classifier.predict(model, [t for t, _ in test])
    return sum(p == y for (p, _), (_, y) in zip(predicted, test, strict=True)) / len(test)


def labels_to_reach(data: Dataset, strategy: str, *, target: float, seed: int = 0, start: int = 8,
                    batch: int = 10, budget: int = 500) -> Run:
    """Label ``start`` random tasks, then ``batch`` more per round by ``strategy`` ("uncertainty" or
    "random") until the held-out accuracy reaches ``target`` or ``budget`` labels are spent."""
    if strategy not in ("uncertainty", "random"):
        raise ValueError(strategy)
    rng = random.Random(seed)
    order = list(range(len(data.pool)))
    rng.shuffle(order)
    labeled = order[:start]
    unlabeled = order[start:]
    curve: list[tuple[int, float]] = []
    while True:
        texts = [data.pool[i][0] for i in labeled]
        labels = [data.pool[i][1] for i in labeled]
        if len(set(labels)) < 2:  # too few classes yet: take the next random tasks
            labeled, unlabeled = labeled + unlabeled[:batch], unlabeled[batch:]
            continue
        model = classifier.train(texts, labels, seed=seed)
        accuracy = _accuracy(model, data.test)
        curve.append((len(labeled), accuracy))
        if accuracy >= target:
            return Run(strategy, len(labeled), curve)
        if len(labeled) >= budget or not unlabeled:
            return Run(strategy, None, curve)
        if strategy == "random":
            chosen = unlabeled[:batch]
        else:
            scores = classifier.predict(model, [data.pool[i][0] for i in unlabeled])
            ranked = sorted(range(len(unlabeled)), key=lambda k: scores[k][1])  # lowest max probability first
            chosen = [unlabeled[k] for k in ranked[:batch]]
        taken = set(chosen)
        labeled = labeled + chosen
        unlabeled = [i for i in unlabeled if i not in taken]
