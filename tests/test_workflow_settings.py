"""Project workflow settings: defaults, validation with field-naming messages, tolerant reading."""

from __future__ import annotations

import pytest

from workspace.tenancy.errors import Invalid
from workspace.workflow.settings import WorkflowSettings, parse_workflow, workflow_settings


def test_missing_settings_take_their_defaults():
    assert workflow_settings(None) == WorkflowSettings()
    assert workflow_settings({"overlap": 3}).overlap == 3
    assert workflow_settings({"overlap": 3}).review == "all"


def test_form_values_are_parsed_and_checked():
    s = parse_workflow({"overlap": "2", "review": "share", "review_share": "30", "blind": "on",
                        "rejected_returns": "", "annotator_cap": ""})
    assert (s.overlap, s.review, s.review_share, s.blind, s.rejected_returns, s.annotator_cap) == (
        2, "share", 30, True, False, None)
    assert parse_workflow({"annotator_cap": "15"}).annotator_cap == 15


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"overlap": "0"}, "overlap", "from 1 to 50"),
    ({"overlap": "two"}, "overlap", "“two”"),
    ({"overlap": True}, "overlap", "whole number"),
    ({"review": "sometimes"}, "review", "one of all, share, none"),
    ({"skipped": "x"}, "skipped", "never, requeue, back"),
    ({"order": "best"}, "order", "uncertainty"),
    ({"overlap_share": "101"}, "overlap_share", "out of range"),
    ({"reservation_minutes": "0"}, "reservation_minutes", "from 1"),
])
def test_bad_values_name_the_field_and_what_is_allowed(data, field, words):
    with pytest.raises(Invalid) as caught:
        parse_workflow(data)
    assert caught.value.field == field and words in caught.value.message


def test_a_stored_value_that_no_longer_validates_falls_back_alone():
    s = workflow_settings({"overlap": 999, "review": "none", "unknown": 1})
    assert s.overlap == 1 and s.review == "none"


def test_overlap_share_and_review_share_are_stable_and_proportional():
    s = WorkflowSettings(overlap=3, overlap_share=25, review="share", review_share=40)
    wants = [s.wants(i) for i in range(1, 10_001)]
    assert set(wants) == {1, 3} and 2200 < wants.count(3) < 2800
    assert wants == [s.wants(i) for i in range(1, 10_001)]
    reviewed = sum(s.reviewed(i) for i in range(1, 10_001))
    assert 3700 < reviewed < 4300
    assert WorkflowSettings(review="none").reviewed(1) is False
    assert WorkflowSettings(overlap=2).wants(7) == 2
