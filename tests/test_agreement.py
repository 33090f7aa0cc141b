"""Agreement metrics against independent implementations (scikit-learn, krippendorff, statsmodels) on
randomized data, and hand-computed small cases for spans, boxes and whole results."""

from __future__ import annotations

import math
import random

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from workspace.workflow.agreement import (Box, Span, box_f1, cohen_kappa, fleiss_kappa, krippendorff_alpha,
                                          result_agreement, span_f1, summarize, task_agreement)

pytestmark = pytest.mark.filterwarnings("ignore:A single label:UserWarning", "ignore::sklearn.exceptions.UndefinedMetricWarning")

LABELS = ["pos", "neg", "neutral", "other"]


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# --- categorical: randomized comparisons ----------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), min_size=1, max_size=60))
def test_cohen_kappa_equals_scikit_learn(pairs):  # type: ignore[no-untyped-def]
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    with np.errstate(all="ignore"):
        expected = float(cohen_kappa_score(a, b))
    assert _close(cohen_kappa(a, b), expected)


@pytest.mark.parametrize("seed", range(40))
def test_fleiss_kappa_equals_statsmodels(seed):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    raters, categories = rng.randint(2, 7), rng.randint(2, 5)
    bias = [rng.random() for _ in range(categories)]
    table = []
    for _ in range(rng.randint(1, 40)):
        row = [0] * categories
        for _ in range(raters):
            row[rng.choices(range(categories), weights=bias)[0]] += 1
        table.append(row)
    with np.errstate(all="ignore"):
        expected = float(sm_fleiss(np.array(table), method="fleiss"))
    assert _close(fleiss_kappa(table), expected)


@pytest.mark.parametrize("seed", range(60))
def test_krippendorff_alpha_equals_the_krippendorff_package_with_missing_values(seed):  # type: ignore[no-untyped-def]
    rng = random.Random(1000 + seed)
    raters, items, categories = rng.randint(2, 6), rng.randint(2, 40), rng.randint(2, 5)
    missing = rng.choice([0.0, 0.2, 0.5])
    matrix: list[list[int | None]] = [
        [None if rng.random() < missing else rng.randint(0, categories - 1) for _ in range(items)]
        for _ in range(raters)]
    pairable = sum(1 for j in range(items) if sum(1 for r in matrix if r[j] is not None) >= 2)
    if pairable == 0:
        with pytest.raises(ValueError):
            krippendorff_alpha([[r[j] for r in matrix] for j in range(items)])
        return
    values = {v for r in matrix for j, v in enumerate(r) if v is not None
              and sum(1 for rr in matrix if rr[j] is not None) >= 2}
    ours = krippendorff_alpha([[r[j] for r in matrix] for j in range(items)])
    if len(values) < 2:
        assert math.isnan(ours)  # no variation: alpha undefined
        return
    data = np.array([[np.nan if v is None else float(v) for v in r] for r in matrix])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert _close(ours, float(expected))


def test_categorical_hand_cases():  # type: ignore[no-untyped-def]
    # Perfect agreement with variation: kappa 1; systematic disagreement: negative.
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert cohen_kappa(["a", "b"], ["b", "a"]) == -1.0
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="Krippendorff"):
        fleiss_kappa([[2, 0], [1, 2]])
    # Krippendorff's worked example (nominal, 4 coders, 12 units with missing values): alpha = 0.743.
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    alpha = krippendorff_alpha([[row[j] for row in data] for j in range(12)])
    assert round(alpha, 3) == 0.743


# --- spans ----------------------------------------------------------------------------------------


def test_span_f1_exact_and_overlap_hand_cases():  # type: ignore[no-untyped-def]
    a = [Span(0, 5, "PER"), Span(10, 20, "ORG"), Span(30, 35, "LOC")]
    b = [Span(0, 5, "PER"), Span(12, 20, "ORG"), Span(30, 35, "PER")]
    # exact: only (0,5,PER) matches -> F1 = 2*1/(3+3)
    assert span_f1(a, b, "exact") == pytest.approx(1 / 3)
    # overlap: PER and ORG match (ORG overlaps 12..20), LOC vs PER differ in label -> 2*2/6
    assert span_f1(a, b, "overlap") == pytest.approx(2 / 3)
    # touching ranges do not overlap (end is exclusive)
    assert span_f1([Span(0, 5, "X")], [Span(5, 9, "X")], "overlap") == 0.0
    # one-to-one: one long span cannot match two short ones; the better IoU wins
    long_ = [Span(0, 10, "X")]
    two = [Span(0, 3, "X"), Span(2, 10, "X")]
    assert span_f1(long_, two, "overlap") == pytest.approx(2 * 1 / 3)
    assert span_f1([], [], "exact") == 1.0
    assert span_f1([Span(0, 1, "X")], [], "overlap") == 0.0
    with pytest.raises(ValueError, match="exact"):
        span_f1(a, b, "fuzzy")


def test_span_f1_exact_counts_duplicates_once():  # type: ignore[no-untyped-def]
    a = [Span(0, 5, "X"), Span(0, 5, "X")]
    b = [Span(0, 5, "X")]
    assert span_f1(a, b, "exact") == pytest.approx(2 / 3)


# --- boxes ----------------------------------------------------------------------------------------


def test_box_f1_iou_threshold_hand_cases():  # type: ignore[no-untyped-def]
    base = Box(0, 0, 10, 10, "car")
    # shifted by 2 on x: intersection 8*10=80, union 120 -> IoU 0.667 >= 0.5: a match
    assert box_f1([base], [Box(2, 0, 10, 10, "car")]) == 1.0
    # shifted by 4: intersection 60, union 140 -> IoU 0.43 < 0.5: no match
    assert box_f1([base], [Box(4, 0, 10, 10, "car")]) == 0.0
    # exactly 0.5: 10x10 vs 10x20 at the same corner -> 100/200
    assert box_f1([base], [Box(0, 0, 10, 20, "car")]) == 1.0
    # label differs: no match
    assert box_f1([base], [Box(0, 0, 10, 10, "bus")]) == 0.0
    # 2 vs 3 boxes, 2 matches: F1 = 4/5
    a = [Box(0, 0, 10, 10, "car"), Box(50, 50, 10, 10, "bus")]
    b = [Box(1, 1, 10, 10, "car"), Box(50, 50, 10, 10, "bus"), Box(80, 80, 5, 5, "car")]
    assert box_f1(a, b) == pytest.approx(4 / 5)
    # one-to-one: two identical boxes on one side against one on the other
    assert box_f1([base, base], [base]) == pytest.approx(2 / 3)


# --- whole results --------------------------------------------------------------------------------


def _choice(v, name="label"):  # type: ignore[no-untyped-def]
    return {"id": "c", "from_name": name, "to_name": "text", "type": "choices", "value": {"choices": [v]}}


def _span(s, e, label):  # type: ignore[no-untyped-def]
    return {"id": f"s{s}", "from_name": "ner", "to_name": "text", "type": "labels",
            "value": {"start": s, "end": e, "text": "x", "labels": [label]}}


def _box(x, y, w, h, label):  # type: ignore[no-untyped-def]
    return {"id": f"b{x}", "from_name": "bbox", "to_name": "image", "type": "rectanglelabels",
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def test_result_and_task_agreement_hand_cases():  # type: ignore[no-untyped-def]
    pos, neg = [_choice("Positive")], [_choice("Negative")]
    assert result_agreement(pos, pos) == 1.0
    assert result_agreement(pos, neg) == 0.0
    # three annotators, two agree: pairs (A,B)=1, (A,C)=0, (B,C)=0 -> 1/3
    assert task_agreement([pos, pos, neg]) == pytest.approx(1 / 3)
    assert task_agreement([pos]) is None
    # mixed controls: choices agree (1), spans F1 overlap 2*1/(2+1) = 2/3 -> mean 5/6
    a = [_choice("Positive"), _span(0, 4, "PER"), _span(10, 14, "ORG")]
    b = [_choice("Positive"), _span(1, 4, "PER")]
    assert result_agreement(a, b) == pytest.approx((1 + 2 / 3) / 2)
    # boxes at IoU >= 0.5
    assert result_agreement([_box(0, 0, 10, 10, "car")], [_box(2, 0, 10, 10, "car")]) == 1.0
    # a control only one side used counts as full disagreement for that control
    assert result_agreement([_choice("Positive"), _choice("x", "other")], [_choice("Positive")]) == 0.5
    # other types: identical values
    rating = {"id": "r", "from_name": "stars", "to_name": "text", "type": "rating", "value": {"rating": 4}}
    assert result_agreement([rating], [rating]) == 1.0
    assert result_agreement([rating], [{**rating, "value": {"rating": 3}}]) == 0.0
    assert result_agreement([], []) == 1.0


def test_summarize_matches_the_independent_implementations():  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    ratings = {t: {u: rng.choice(LABELS[:3]) for u in (1, 2, 3) if rng.random() < 0.8} for t in range(50)}
    s = summarize("label", ratings)
    units = {t: r for t, r in ratings.items() if len(r) >= 2}
    assert s.items == len(units) and s.raters == 3
    data = np.array([[np.nan if u not in units[t] else float(LABELS.index(units[t][u])) for t in units]
                     for u in (1, 2, 3)])
    assert s.alpha == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    for a, b, shared, kappa in s.pairs:
        both = [t for t in units if a in units[t] and b in units[t]]
        assert shared == len(both)
        assert kappa == pytest.approx(cohen_kappa_score([units[t][a] for t in both], [units[t][b] for t in both]))
