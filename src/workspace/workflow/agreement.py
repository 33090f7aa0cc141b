"""Inter-annotator agreement: pure functions, no I/O.

Categorical labels (choices):

* :func:`cohen_kappa` — two annotators' labels of the same items (equals scikit-learn's
  ``cohen_kappa_score``).
* :func:`fleiss_kappa` — many annotators, every item rated by the same number of raters (equals
  statsmodels' ``fleiss_kappa`` on the item × category count table).
* :func:`krippendorff_alpha` — many annotators, nominal data, missing ratings allowed (equals the
  ``krippendorff`` package with ``level_of_measurement="nominal"``). Items with fewer than two ratings
  are not pairable and are left out, as Krippendorff defines it.

Regions:

* :func:`span_f1` — two annotators' text spans ``(start, end, label)``. ``exact``: a match has the same
  start, end and label. ``overlap``: a match has the same label and ranges that share at least one
  character (``max(start) < min(end)``, i.e. IoU > 0); each region matches at most one region of the
  other side, chosen greedily by decreasing IoU (ties: earlier regions first).
* :func:`box_f1` — two annotators' boxes ``(x, y, width, height, label)`` (percent of the image): a
  match has the same label and IoU ≥ 0.5, one-to-one, greedy by decreasing IoU.

F1 = 2·matches / (|a| + |b|); two empty sides agree fully (1.0).

Whole annotations (Label Studio results, lists of regions):

* :func:`result_agreement` — how much two results agree, in 0..1: the mean over the controls
  (``from_name``) that either result uses of a per-control score — choices: 1 when both picked the
  same set, else 0; spans: overlap F1; boxes: F1 at IoU ≥ 0.5; any other type (text areas, ratings,
  numbers, polygons, keypoints): the share of regions with an identical value (an F1 of exact matches).
* :func:`task_agreement` — the mean :func:`result_agreement` over every pair of a task's counted
  annotations; ``None`` with fewer than two.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

__all__ = ["cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "Span", "Box", "span_f1", "box_f1", "f1",
           "iou_1d", "iou_box", "result_agreement", "task_agreement", "choices_of", "spans_of", "boxes_of",
           "ProjectAgreement", "summarize", "BOX_IOU", "EXACT", "OVERLAP"]

BOX_IOU = 0.5
EXACT = "exact"
OVERLAP = "overlap"


# --------------------------------------------------------------------------------------------------
# Categorical agreement
# --------------------------------------------------------------------------------------------------


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two annotators' labels, item by item: (p_o − p_e) / (1 − p_e).

    When both annotators always give one and the same label, chance agreement is 1 and kappa is
    undefined; like scikit-learn we return NaN then."""
    if len(a) != len(b):
        raise ValueError(f"both annotators must label the same items: got {len(a)} and {len(b)} labels")
    n = len(a)
    if n == 0:
        raise ValueError("no items to compare")
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[k] * count_b.get(k, 0) for k in count_a) / (n * n)
    if expected == 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items × categories table of rating counts (each row: how many raters
    put the item in each category). Every item must have the same number of ratings (≥ 2)."""
    if not table:
        raise ValueError("no items to compare")
    totals = {sum(row) for row in table}
    if len(totals) != 1:
        raise ValueError("Fleiss' kappa needs the same number of ratings for every item; "
                         "use Krippendorff's alpha when ratings are missing")
    raters = totals.pop()
    if raters < 2:
        raise ValueError("each item needs at least two ratings")
    items = len(table)
    categories = len(table[0])
    p_j = [sum(row[j] for row in table) / (items * raters) for j in range(categories)]
    p_i = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in table]
    p_bar = sum(p_i) / items
    p_e = sum(p * p for p in p_j)
    if p_e == 1.0:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha(units: Iterable[Sequence[Hashable | None]]) -> float:
    """Krippendorff's alpha for nominal data: ``units`` is one sequence per item of the values its
    raters gave (``None`` for a rater who did not rate it). alpha = 1 − D_o / D_e from the
    coincidence matrix; NaN when there is no variation at all (D_e = 0)."""
    coincidence: Counter[tuple[Hashable, Hashable]] = Counter()
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    coincidence[(c, k)] += pairs / (m - 1)
    n_c: Counter[Hashable] = Counter()
    for (c, _k), value in coincidence.items():
        n_c[c] += value
    total = sum(n_c.values())
    if total <= 1:
        raise ValueError("no item has two ratings: nothing to compare")
    disagreement_observed = sum(v for (c, k), v in coincidence.items() if c != k)
    disagreement_expected = (total * total - sum(v * v for v in n_c.values())) / (total - 1)
    if disagreement_expected == 0:
        return math.nan
    return 1.0 - (total - 1) * disagreement_observed / (total * total - sum(v * v for v in n_c.values()))


# --------------------------------------------------------------------------------------------------
# Region matching
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float
    label: str


def f1(matches: int, size_a: int, size_b: int) -> float:
    if size_a + size_b == 0:
        return 1.0
    return 2.0 * matches / (size_a + size_b)


def iou_1d(a: Span, b: Span) -> float:
    inter = min(a.end, b.end) - max(a.start, b.start)
    if inter <= 0:
        return 0.0
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def iou_box(a: Box, b: Box) -> float:
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _greedy_matches(scores: list[tuple[float, int, int]]) -> int:
    """One-to-one matches from candidate (score, i, j): highest score first, ties by (i, j)."""
    used_a: set[int] = set()
    used_b: set[int] = set()
    matched = 0
    for _score, i, j in sorted(scores, key=lambda s: (-s[0], s[1], s[2])):
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        matched += 1
    return matched


def span_f1(a: Sequence[Span], b: Sequence[Span], mode: str = EXACT) -> float:
    """F1 between two annotators' spans; ``mode`` is ``"exact"`` or ``"overlap"`` (see the module doc)."""
    if mode == EXACT:
        remaining = Counter(b)
        matched = 0
        for span in a:
            if remaining[span] > 0:
                remaining[span] -= 1
                matched += 1
        return f1(matched, len(a), len(b))
    if mode != OVERLAP:
        raise ValueError(f"unknown span matching {mode!r}: use 'exact' or 'overlap'")
    candidates = [(iou, i, j) for i, x in enumerate(a) for j, y in enumerate(b)
                  if x.label == y.label and (iou := iou_1d(x, y)) > 0]
    return f1(_greedy_matches(candidates), len(a), len(b))


def box_f1(a: Sequence[Box], b: Sequence[Box], threshold: float = BOX_IOU) -> float:
    """F1 between two annotators' boxes: same label and IoU ≥ ``threshold``, one-to-one, greedy."""
    candidates = [(iou, i, j) for i, x in enumerate(a) for j, y in enumerate(b)
                  if x.label == y.label and (iou := iou_box(x, y)) >= threshold]
    return f1(_greedy_matches(candidates), len(a), len(b))


# --------------------------------------------------------------------------------------------------
# Whole results (Label Studio format)
# --------------------------------------------------------------------------------------------------


def _regions(result: Any) -> list[dict[str, Any]]:
    if not isinstance(result, list):
        return []
    return [r for r in result if isinstance(r, dict) and isinstance(r.get("value"), dict)
            and isinstance(r.get("from_name"), str)]


def _labels(value: Mapping[str, Any], key: str) -> list[str]:
    items = value.get(key)
    return [str(v) for v in items] if isinstance(items, list) else []


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def choices_of(result: Any, from_name: str) -> frozenset[str] | None:
    """The set of choices a result picked in one control, or None if it picked nothing there."""
    picked: set[str] = set()
    found = False
    for r in _regions(result):
        if r["from_name"] == from_name and r.get("type") == "choices":
            found = True
            picked.update(_labels(r["value"], "choices"))
    return frozenset(picked) if found else None


def spans_of(regions: Iterable[dict[str, Any]]) -> list[Span]:
    out = []
    for r in regions:
        start, end = _num(r["value"].get("start")), _num(r["value"].get("end"))
        if start is None or end is None:
            continue
        for label in _labels(r["value"], "labels") or [""]:
            out.append(Span(start, end, label))
    return out


def boxes_of(regions: Iterable[dict[str, Any]]) -> list[Box]:
    out = []
    for r in regions:
        v = r["value"]
        x, y, w, h = (_num(v.get(k)) for k in ("x", "y", "width", "height"))
        if x is None or y is None or w is None or h is None:
            continue
        for label in _labels(v, "rectanglelabels") or [""]:
            out.append(Box(x, y, w, h, label))
    return out


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _control_score(kind: str, a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    if kind == "choices":
        sa = frozenset(c for r in a for c in _labels(r["value"], "choices"))
        sb = frozenset(c for r in b for c in _labels(r["value"], "choices"))
        return 1.0 if sa == sb else 0.0
    if kind == "labels":
        return span_f1(spans_of(a), spans_of(b), OVERLAP)
    if kind == "rectanglelabels":
        return box_f1(boxes_of(a), boxes_of(b))
    remaining = Counter(_canonical(r["value"]) for r in b)
    matched = 0
    for r in a:
        key = _canonical(r["value"])
        if remaining[key] > 0:
            remaining[key] -= 1
            matched += 1
    return f1(matched, len(a), len(b))


def result_agreement(a: Any, b: Any) -> float:
    """Agreement of two Label Studio results in 0..1 (see the module doc)."""
    ra, rb = _regions(a), _regions(b)
    controls: dict[str, str] = {}
    for r in (*ra, *rb):
        controls.setdefault(r["from_name"], str(r.get("type") or ""))
    if not controls:
        return 1.0
    scores = [_control_score(kind, [r for r in ra if r["from_name"] == name], [r for r in rb if r["from_name"] == name])
              for name, kind in controls.items()]
    return sum(scores) / len(scores)


def task_agreement(results: Sequence[Any]) -> float | None:
    """Mean pairwise :func:`result_agreement` of a task's counted annotations; None with fewer than 2."""
    if len(results) < 2:
        return None
    scores = [result_agreement(x, y) for x, y in combinations(results, 2)]
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------------------------------
# Project summary of categorical agreement
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectAgreement:
    """Chance-corrected agreement of one choices control over a project's overlapping tasks."""

    control: str
    items: int  # tasks with at least two annotations that picked something in this control
    raters: int
    alpha: float | None  # Krippendorff's alpha (nominal, missing allowed)
    fleiss: float | None  # Fleiss' kappa over the items with the most common number of ratings
    pairs: list[tuple[int, int, int, float | None]]  # (rater a, rater b, shared items, Cohen's kappa)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def summarize(control: str, ratings: Mapping[int, Mapping[int, Hashable]]) -> ProjectAgreement:
    """``ratings``: task id → {rater id → label}. Alpha over every task with two or more ratings;
    Fleiss' kappa over the tasks with the most common number of ratings; Cohen's kappa for each pair
    of raters over the tasks both rated (pairs with fewer than two shared tasks are left out)."""
    units = {t: r for t, r in ratings.items() if len(r) >= 2}
    raters = sorted({u for r in units.values() for u in r})
    alpha: float | None = None
    fleiss: float | None = None
    if units:
        alpha = _finite(krippendorff_alpha([list(r.values()) for r in units.values()]))
        common = Counter(len(r) for r in units.values()).most_common(1)[0][0]
        same = [r for r in units.values() if len(r) == common]
        categories = sorted({str(v) for r in same for v in r.values()})
        table = [[sum(1 for v in r.values() if str(v) == c) for c in categories] for r in same]
        fleiss = _finite(fleiss_kappa(table))
    pairs: list[tuple[int, int, int, float | None]] = []
    for a, b in combinations(raters, 2):
        shared = [(r[a], r[b]) for r in units.values() if a in r and b in r]
        if len(shared) >= 2:
            pairs.append((a, b, len(shared), _finite(cohen_kappa([x for x, _ in shared], [y for _, y in shared]))))
    return ProjectAgreement(control, len(units), len(raters), alpha, fleiss, pairs)
