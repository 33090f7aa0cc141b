"""Label Studio labeling configs: the templates teams paste are accepted; mistakes are reported precisely.

Every invalid config asserts the message, the 1-based line and column, and the tag/attribute the
problem is about. Configs are written one element per line with two-space indentation, so a
position can be checked by eye: column 3 is a child of <View>, column 5 a grandchild.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from workspace.workflow.label_config import (
    TAGS,
    LabelConfig,
    LabelConfigError,
    Problem,
    parse_label_config,
    removed_labels,
    validate_label_config,
)


def config(*lines: str) -> str:
    return "\n".join(lines)


def problems_of(text: str) -> list[Problem]:
    found = validate_label_config(text)
    assert found, "expected the config to be refused"
    return found


def only_problem(text: str) -> Problem:
    found = problems_of(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def where(problem: Problem) -> tuple[int, int, str | None, str | None]:
    return problem.line, problem.column, problem.tag, problem.attribute


# ==================================================================================================
# Valid configs: one per Label Studio template kind
# ==================================================================================================

TEXT_CLASSIFICATION = config(
    "<View>",
    '  <Text name="text" value="$text"/>',
    '  <Choices name="sentiment" toName="text" choice="single-radio" showInline="true">',
    '    <Choice value="Positive"/>',
    '    <Choice value="Negative"/>',
    '    <Choice value="Neutral"/>',
    "  </Choices>",
    "</View>",
)


def test_text_classification() -> None:
    parsed = parse_label_config(TEXT_CLASSIFICATION)
    assert [(o.name, o.tag, o.field) for o in parsed.objects] == [("text", "Text", "text")]
    (control,) = parsed.controls
    assert (control.name, control.tag, control.to_names, control.to_name) == ("sentiment", "Choices", ("text",), "text")
    assert control.options == {"choice": "single-radio", "showInline": "true"}
    assert parsed.labels_of("sentiment") == ("Positive", "Negative", "Neutral")
    assert parsed.data_fields == frozenset({"text"})
    assert control.result_type == "choices"
    assert (control.line, control.column) == (3, 3)


def test_multi_label_classification() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Text name="review" value="$review" granularity="word"/>',
        '  <Choices name="topics" toName="review" choice="multiple" required="true" requiredMessage="Pick one">',
        '    <Choice value="Price" hotkey="1"/>',
        '    <Choice value="Quality" hotkey="2" selected="true"/>',
        '    <Choice value="Delivery" hint="Shipping and packaging" background="#ffcc00"/>',
        "  </Choices>",
        "</View>",
    ))
    topics = parsed.control("topics")
    assert topics.options["choice"] == "multiple"
    assert [label.attrs.get("hotkey") for label in topics.labels] == ["1", "2", None]
    assert topics.labels[1].attrs["selected"] == "true"


def test_named_entity_recognition() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Labels name="label" toName="text" showInline="true" maxUsages="10">',
        '    <Label value="PER" background="red" hotkey="p"/>',
        '    <Label value="ORG" background="darkorange" alias="organisation" maxUsages="3"/>',
        '    <Label value="LOC" background="orange" granularity="word"/>',
        "  </Labels>",
        '  <Text name="text" value="$text" saveTextResult="no"/>',
        "</View>",
    ))
    label = parsed.control("label")
    assert label.result_type == "labels"
    assert parsed.labels_of("label") == ("PER", "ORG", "LOC")
    # Label Studio writes the alias into results, so that is the value annotations hold
    assert parsed.used_label_values() == {"label": frozenset({"PER", "organisation", "LOC"})}


def test_sentiment_with_a_header_and_layout() -> None:
    parsed = parse_label_config(config(
        '<View style="display: flex;">',
        '  <Header value="How does the author feel?" size="4" underline="true"/>',
        '  <View style="width: 60%" className="review">',
        '    <Text name="text" value="$text"/>',
        "  </View>",
        '  <Choices name="sentiment" toName="text" choice="single" showInline="true">',
        '    <Choice value="Positive" style="color: green"/>',
        '    <Choice value="Negative" style="color: red"/>',
        "  </Choices>",
        "  <Style>.review { font-size: 18px; }</Style>",
        "</View>",
    ))
    assert parsed.data_fields == frozenset({"text"})  # a literal Header value is not a data field
    assert parsed.object("text").line == 4


def test_image_classification() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Image name="image" value="$image" zoom="true" maxWidth="800px" zoomControl="true"/>',
        '  <Choices name="choice" toName="image">',
        '    <Choice value="Cat"/>',
        '    <Choice value="Dog"/>',
        "  </Choices>",
        "</View>",
    ))
    assert [(o.tag, o.field) for o in parsed.objects] == [("Image", "image")]
    assert parsed.object("image").attrs["zoom"] == "true"


def test_object_detection_with_bounding_boxes() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Image name="image" value="$image" zoom="true" crosshair="true" defaultZoom="fit"/>',
        '  <RectangleLabels name="label" toName="image" strokeWidth="3" opacity="0.5" canRotate="false">',
        '    <Label value="Airplane" background="green"/>',
        '    <Label value="Car" background="blue"/>',
        "  </RectangleLabels>",
        "</View>",
    ))
    boxes = parsed.control("label")
    assert boxes.result_type == "rectanglelabels"
    assert boxes.options == {"strokeWidth": "3", "opacity": "0.5", "canRotate": "false"}


def test_semantic_segmentation_with_polygons() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Header value="Select a label and click to add points"/>',
        '  <Image name="image" value="$image" zoom="true"/>',
        '  <PolygonLabels name="label" toName="image" strokeWidth="3" pointSize="small" pointStyle="circle">',
        '    <Label value="Airplane" background="red"/>',
        '    <Label value="Car" background="blue"/>',
        "  </PolygonLabels>",
        "</View>",
    ))
    assert parsed.labels_of("label") == ("Airplane", "Car")


def test_keypoints() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <KeyPointLabels name="kp" toName="img" strokeWidth="2" smart="true">',
        '    <Label value="Face" background="red"/>',
        '    <Label value="Nose" background="green"/>',
        "  </KeyPointLabels>",
        '  <Image name="img" value="$image" zoom="true"/>',
        "</View>",
    ))
    assert parsed.control("kp").to_names == ("img",)
    assert parsed.control("kp").result_type == "keypointlabels"


def test_audio_classification() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Audio name="audio" value="$audio" hotkey="ctrl+enter" zoom="true" volume="true" speed="true"/>',
        '  <Choices name="emotion" toName="audio" choice="single-radio" showInline="true">',
        '    <Choice value="Happy"/>',
        '    <Choice value="Sad"/>',
        "  </Choices>",
        "</View>",
    ))
    assert parsed.data_fields == frozenset({"audio"})
    assert parsed.object("audio").tag == "Audio"


def test_audio_transcription() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Audio name="audio" value="$url" decoder="webaudio"/>',
        '  <TextArea name="transcription" toName="audio" rows="4" editable="true" maxSubmissions="1"',
        '            transcription="true" placeholder="Type what you hear" displayMode="tag" required="true"/>',
        "</View>",
    ))
    area = parsed.control("transcription")
    assert area.result_type == "textarea" and area.labels == ()
    assert area.options["placeholder"] == "Type what you hear"
    assert parsed.data_fields == frozenset({"url"})


def test_hypertext_rating_and_number() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <HyperText name="page" value="$html" inline="true" saveTextResult="yes" granularity="symbol"/>',
        '  <Rating name="quality" toName="page" maxRating="10" icon="heart" size="large" defaultValue="0"/>',
        '  <Number name="score" toName="page" min="0" max="1" step="0.05" defaultValue="0.5" slider="true"/>',
        "</View>",
    ))
    assert [c.tag for c in parsed.controls] == ["Rating", "Number"]
    assert parsed.control("quality").options["maxRating"] == "10"
    assert parsed.control("score").options == {"min": "0", "max": "1", "step": "0.05", "defaultValue": "0.5",
                                               "slider": "true"}
    assert parsed.used_label_values() == {}


def test_a_control_may_label_several_objects() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Text name="question" value="$question"/>',
        '  <Text name="answer" value="$answer"/>',
        '  <Rating name="match" toName="question, answer" maxRating="3"/>',
        "</View>",
    ))
    assert parsed.control("match").to_names == ("question", "answer")
    assert parsed.data_fields == frozenset({"question", "answer"})


def test_header_with_a_data_field_and_dynamic_choices_are_data_fields() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Header value="$title"/>',
        '  <Text name="text" value="$body"/>',
        '  <Choices name="tags" toName="text" value="$options"/>',
        "</View>",
    ))
    assert parsed.data_fields == frozenset({"title", "body", "options"})
    assert parsed.control("tags").dynamic_field == "options"
    assert parsed.labels_of("tags") == ()


def test_conditional_visibility_and_multi_image() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Image name="pages" valueList="$pages"/>',
        '  <Choices name="kind" toName="pages">',
        '    <Choice value="Invoice"/>',
        '    <Choice value="Receipt"/>',
        "  </Choices>",
        '  <View visibleWhen="choice-selected" whenTagName="kind" whenChoiceValue="Invoice">',
        '    <Number name="total" toName="pages" min="0"/>',
        "  </View>",
        "</View>",
    ))
    assert parsed.object("pages").field == "pages"
    assert parsed.data_fields == frozenset({"pages"})


def test_nested_choices_when_allowed() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="taxonomy" toName="text" allowNested="true" choice="multiple">',
        '    <Choice value="Animal">',
        '      <Choice value="Cat"/>',
        "    </Choice>",
        "  </Choices>",
        "</View>",
    ))
    assert parsed.labels_of("taxonomy") == ("Animal", "Cat")


def test_entities_and_case_of_booleans() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text" showInline="True">',
        '    <Choice value="Fish &amp; Chips"/>',
        '    <Choice value="&#8364; price"/>',
        "  </Choices>",
        "</View>",
    ))
    assert parsed.labels_of("c") == ("Fish & Chips", "€ price")


def test_validate_returns_nothing_for_a_valid_config_and_lookups_fail_clearly() -> None:
    assert validate_label_config(TEXT_CLASSIFICATION) == []
    parsed = parse_label_config(TEXT_CLASSIFICATION)
    with pytest.raises(KeyError, match='no control tag named "nope"; control tags: "sentiment"'):
        parsed.labels_of("nope")
    with pytest.raises(KeyError, match='object tags: "text"'):
        parsed.object("nope")


# ==================================================================================================
# removed_labels
# ==================================================================================================

OLD = config(
    "<View>",
    '  <Image name="image" value="$image"/>',
    '  <RectangleLabels name="box" toName="image">',
    '    <Label value="Car"/>',
    '    <Label value="Truck"/>',
    '    <Label value="Bus" alias="bus"/>',
    "  </RectangleLabels>",
    '  <Choices name="quality" toName="image">',
    '    <Choice value="Good"/>',
    '    <Choice value="Bad"/>',
    "  </Choices>",
    "</View>",
)


def test_removed_labels_reports_dropped_values_and_ignores_additions() -> None:
    new = OLD.replace('    <Label value="Truck"/>\n', "")
    new = new.replace('<Choice value="Bad"/>', '<Choice value="Bad"/><Choice value="Ugly"/>')
    assert removed_labels(parse_label_config(OLD), parse_label_config(new)) == {"box": {"Truck"}}


def test_removed_labels_counts_a_dropped_control_and_a_changed_alias() -> None:
    new = config(
        "<View>",
        '  <Image name="image" value="$image"/>',
        '  <RectangleLabels name="box" toName="image">',
        '    <Label value="Car"/>',
        '    <Label value="Truck"/>',
        '    <Label value="Bus" alias="coach"/>',
        "  </RectangleLabels>",
        "</View>",
    )
    removed = removed_labels(parse_label_config(OLD), parse_label_config(new))
    assert removed == {"box": {"bus"}, "quality": {"Good", "Bad"}}
    assert removed_labels(parse_label_config(OLD), parse_label_config(OLD)) == {}


# ==================================================================================================
# Invalid configs: message, line, column, tag and attribute
# ==================================================================================================


def test_root_must_be_view_and_its_content_is_still_checked() -> None:
    found = problems_of(config(
        '<Panel title="x">',
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text"><Choice value="a"/></Choices>',
        '  <Rating name="r" toName="text" maxRating="many"/>',
        "</Panel>",
    ))
    assert [(p.message, where(p)) for p in found] == [
        ("the root tag must be <View>, not <Panel>; wrap the config in <View>...</View>", (1, 1, "Panel", None)),
        ('invalid maxRating="many" on <Rating name="r">: use a whole number of at least 1',
         (4, 34, "Rating", "maxRating")),
    ]


def test_lowercase_root_gets_a_hint() -> None:
    problem = only_problem('<view>\n  <Text name="t" value="$t"/>\n  <TextArea name="a" toName="t"/>\n</view>')
    assert problem.message == (
        "the root tag must be <View>, not <view> (did you mean View?); wrap the config in <View>...</View>"
    )
    assert where(problem) == (1, 1, "view", None)


def test_unknown_tag_suggests_a_spelling_and_lists_the_tags() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text">',
        '    <Choice value="a"/>',
        "  </Choices>",
        '  <Choise value="b"/>',
        "</View>",
    ))
    assert problem.message.startswith("unknown tag <Choise> (did you mean Choice?); allowed tags: Audio, Choice, ")
    assert "RectangleLabels" in problem.message
    assert where(problem) == (6, 3, "Choise", None)


def test_unknown_attribute_is_ignored_like_label_studio_does_and_reported_with_the_allowed_ones() -> None:
    parsed = parse_label_config(config(
        "<View>",
        '  <Text name="text" value="$text" colour="red"/>',
        '  <Choices name="c" toName="text" showInLine="true"><Choice value="A"/></Choices>',
        "</View>",
    ))
    assert [c.name for c in parsed.controls] == ["c"]
    problem, near_miss = parsed.warnings
    assert near_miss.message.startswith("unknown attribute showInLine on <Choices> (did you mean showInline?)")
    assert problem.message == (
        "unknown attribute colour on <Text>; allowed: name, value, valueType, saveTextResult, encoding, "
        "selectionEnabled, clickableLinks, highlightColor, showLabels, granularity"
    )
    assert where(problem) == (2, 35, "Text", "colour")


def test_misspelt_to_name_is_unknown_and_to_name_is_missing() -> None:
    found = problems_of(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <TextArea name="answer" toname="text"/>',
        "</View>",
    ))
    assert [(p.message, where(p)) for p in found] == [
        (
            (
                '<TextArea name="answer"> is missing the required attribute toName; set toName to the name of the '
                "object tag it labels"
            ),
            (3, 3, "TextArea", None),
        ),
        (found[1].message, (3, 27, "TextArea", "toname")),
    ]
    assert found[1].message.startswith("unknown attribute toname on <TextArea> (did you mean toName?); allowed: name")


def test_control_without_a_name() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Rating toName="text"/>',
        "</View>",
    ))
    assert problem.message == (
        '<Rating> is missing the required attribute name; give it a unique name, such as name="label"'
    )
    assert where(problem) == (3, 3, "Rating", None)


def test_object_without_a_name() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Image value="$image"/>',
        '  <Choices name="c" toName="img"><Choice value="x"/></Choices>',
        '  <Image name="img" value="$image2"/>',
        "</View>",
    ))
    assert problem.message.startswith("<Image> is missing the required attribute name")
    assert where(problem) == (2, 3, "Image", None)


def test_object_without_a_value() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Audio name="audio"/>',
        '  <TextArea name="t" toName="audio"/>',
        "</View>",
    ))
    assert problem.message == (
        '<Audio name="audio"> is missing the required attribute value; set value to the task data field it '
        'shows, such as value="$audio"'
    )
    assert where(problem) == (2, 3, "Audio", None)


def test_choice_without_a_value() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text">',
        '    <Choice value="a"/>',
        '    <Choice alias="b"/>',
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == "<Choice> is missing the required attribute value; set value to the text of the option"
    assert where(problem) == (5, 5, "Choice", None)


def test_label_without_a_value() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Labels name="ner" toName="text">',
        '    <Label background="red"/>',
        "  </Labels>",
        "</View>",
    ))
    assert problem.message.startswith("<Label> is missing the required attribute value")
    assert where(problem) == (4, 5, "Label", None)


def test_object_value_must_reference_a_data_field() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="text"/>',
        '  <TextArea name="a" toName="text"/>',
        "</View>",
    ))
    assert problem.message == (
        'invalid value="text" on <Text name="text">: reference a task data field, such as "$text" or "$image"'
    )
    assert where(problem) == (2, 21, "Text", "value")


def test_literal_image_urls_are_refused() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Image name="img" value="https://example.com/cat.png"/>',
        '  <TextArea name="a" toName="img"/>',
        "</View>",
    ))
    assert problem.message.startswith('invalid value="https://example.com/cat.png" on <Image name="img">')
    assert where(problem) == (2, 21, "Image", "value")


def test_to_name_must_match_an_object_and_the_message_lists_them() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="title" value="$title"/>',
        '  <Text name="body" value="$body"/>',
        '  <Choices name="c" toName="text">',
        '    <Choice value="a"/>',
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == (
        '<Choices name="c"> has toName="text", but no object tag has that name; object tags: "title", "body"'
    )
    assert where(problem) == (4, 21, "Choices", "toName")


def test_one_unknown_name_in_a_to_name_list() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="q" value="$q"/>',
        '  <Rating name="r" toName="q,a"/>',
        "</View>",
    ))
    assert problem.message.startswith('<Rating name="r"> has toName="a", but no object tag has that name')
    assert where(problem) == (3, 20, "Rating", "toName")


def test_to_name_must_point_at_an_object_not_a_control() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text"><Choice value="a"/></Choices>',
        '  <TextArea name="why" toName="c"/>',
        "</View>",
    ))
    assert problem.message == (
        '<TextArea name="why"> has toName="c", which is <Choices name="c">, not an object tag; object tags: "text"'
    )
    assert where(problem) == (4, 24, "TextArea", "toName")


def test_rectangle_labels_cannot_label_text() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <RectangleLabels name="box" toName="text">',
        '    <Label value="Car"/>',
        "  </RectangleLabels>",
        "</View>",
    ))
    assert problem.message == (
        '<RectangleLabels name="box"> cannot label <Text name="text">; point toName at an <Image> tag'
    )
    assert where(problem) == (3, 31, "RectangleLabels", "toName")


def test_span_labels_cannot_label_an_image() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Image name="img" value="$image"/>',
        '  <Labels name="ner" toName="img">',
        '    <Label value="PER"/>',
        "  </Labels>",
        "</View>",
    ))
    assert problem.message.endswith("point toName at a <Text>, <HyperText> or <Audio> tag")
    assert where(problem) == (3, 22, "Labels", "toName")


def test_duplicate_names() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="text" toName="text">',
        '    <Choice value="a"/>',
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == (
        'duplicate name "text": <Text name="text"> at line 2, column 3 already uses it; give every tag its own name'
    )
    assert where(problem) == (3, 12, "Choices", "name")


def test_choices_without_choice() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="sentiment" toName="text">',
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == (
        '<Choices name="sentiment"> has no <Choice>; add at least one <Choice value="..."/> inside it'
    )
    assert where(problem) == (3, 3, "Choices", None)


def test_labels_without_label() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Image name="img" value="$image"/>',
        '  <PolygonLabels name="poly" toName="img"/>',
        "</View>",
    ))
    assert problem.message == (
        '<PolygonLabels name="poly"> has no <Label>; add at least one <Label value="..."/> inside it'
    )
    assert where(problem) == (3, 3, "PolygonLabels", None)


def test_duplicate_choice_values() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text">',
        '    <Choice value="Yes"/>',
        '    <Choice value="No"/>',
        '    <Choice value="Yes"/>',
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == (
        'duplicate <Choice> value "Yes" in <Choices name="c">; each option of a control must be different'
    )
    assert where(problem) == (6, 13, "Choice", "value")


def test_duplicate_label_values() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Image name="img" value="$image"/>',
        '  <KeyPointLabels name="kp" toName="img">',
        '    <Label value="Eye"/>',
        '    <Label background="blue" value="Eye"/>',
        "  </KeyPointLabels>",
        "</View>",
    ))
    assert problem.message.startswith('duplicate <Label> value "Eye" in <KeyPointLabels name="kp">')
    assert where(problem) == (5, 30, "Label", "value")


def test_two_options_saved_as_the_same_alias() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Labels name="ner" toName="text">',
        '    <Label value="Person" alias="P"/>',
        '    <Label value="Place" alias="P"/>',
        "  </Labels>",
        "</View>",
    ))
    assert problem.message == (
        '<Label value="Place"> in <Labels name="ner"> would be saved as "P", like another option; use a different alias'
    )
    assert where(problem) == (5, 26, "Label", "alias")


def test_invalid_choice_mode() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text" choice="sometimes">',
        '    <Choice value="a"/>',
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == (
        'invalid choice="sometimes" on <Choices name="c">: use one of "single", "single-radio", "multiple"'
    )
    assert where(problem) == (3, 35, "Choices", "choice")


def test_labels_do_not_have_the_single_radio_mode() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Labels name="l" toName="text" choice="single-radio">',
        '    <Label value="a"/>',
        "  </Labels>",
        "</View>",
    ))
    assert problem.message.endswith('use one of "single", "multiple"')
    assert where(problem) == (3, 34, "Labels", "choice")


def test_non_numeric_max_rating() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Rating name="stars" toName="text" maxRating="five"/>',
        "</View>",
    ))
    assert problem.message == 'invalid maxRating="five" on <Rating name="stars">: use a whole number of at least 1'
    assert where(problem) == (3, 38, "Rating", "maxRating")


def test_zero_and_fractional_max_usages() -> None:
    found = problems_of(config(
        "<View>",
        '  <Image name="img" value="$image"/>',
        '  <RectangleLabels name="box" toName="img" maxUsages="0">',
        '    <Label value="Car" maxUsages="1.5"/>',
        "  </RectangleLabels>",
        "</View>",
    ))
    assert [(p.message.split(":")[0], where(p)) for p in found] == [
        ('invalid maxUsages="0" on <RectangleLabels name="box">', (3, 44, "RectangleLabels", "maxUsages")),
        ('invalid maxUsages="1.5" on <Label>', (4, 24, "Label", "maxUsages")),
    ]
    assert all(p.message.endswith("use a whole number of at least 1") for p in found)


def test_non_numeric_min_and_max() -> None:
    found = problems_of(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Number name="n" toName="text" min="low" max="1e400"/>',
        "</View>",
    ))
    assert [(p.message, where(p)) for p in found] == [
        ('invalid min="low" on <Number name="n">: use a number, such as 1 or 0.5', (3, 34, "Number", "min")),
        ('invalid max="1e400" on <Number name="n">: use a number, such as 1 or 0.5', (3, 44, "Number", "max")),
    ]


def test_min_above_max_and_zero_step() -> None:
    found = problems_of(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Number name="n" toName="text"',
        '          step="0" min="10" max="1"/>',
        "</View>",
    ))
    assert [(p.message, where(p)) for p in found] == [
        ('invalid step="0" on <Number name="n">: use a number greater than 0', (4, 11, "Number", "step")),
        ('<Number name="n"> has max="1" below min="10"; make max at least min', (4, 29, "Number", "max")),
    ]


def test_invalid_boolean() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Image name="img" value="$image" zoom="yes"/>',
        '  <TextArea name="a" toName="img"/>',
        "</View>",
    ))
    assert problem.message == 'invalid zoom="yes" on <Image name="img">: use "true" or "false"'
    assert where(problem) == (2, 36, "Image", "zoom")


def test_invalid_name_and_to_name() -> None:
    found = problems_of(config(
        "<View>",
        '  <Text name="my text" value="$text"/>',
        '  <TextArea name="a" toName="my text"/>',
        "</View>",
    ))
    assert [(p.message, where(p)) for p in found] == [
        ('invalid name="my text" on <Text name="my text">: use a non-empty name without spaces or commas',
         (2, 9, "Text", "name")),
        (
            (
                'invalid toName="my text" on <TextArea name="a">: use the name of an object tag, or several names '
                "separated by commas"
            ),
            (3, 22, "TextArea", "toName"),
        ),
    ]


def test_config_without_object_tags() -> None:
    found = problems_of(config(
        "<View>",
        '  <Choices name="c" toName="text">',
        '    <Choice value="a"/>',
        "  </Choices>",
        "</View>",
    ))
    assert [where(p) for p in found] == [(1, 1, "View", None), (2, 21, "Choices", "toName")]
    assert found[0].message == (
        "the config has no object tag to label; add one of <Text>, <HyperText>, <Image> or <Audio>, such as "
        '<Text name="text" value="$text"/>'
    )
    assert found[1].message.endswith("object tags: (none)")


def test_config_without_control_tags() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Header value="Read this"/>',
        '  <Text name="text" value="$text"/>',
        "</View>",
    ))
    assert problem.message.startswith(
        "the config has no control tag to label with; add one of <Choices>, <KeyPointLabels>"
    )
    assert where(problem) == (1, 1, "View", None)


def test_choice_outside_choices() -> None:
    found = problems_of(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choice value="a"/>',
        "</View>",
    ))
    assert found[0].message.startswith("the config has no control tag")  # reported too, at the root
    assert where(found[0])[:2] == (1, 1)
    assert found[1].message == "<Choice> must be placed directly inside <Choices>"
    assert where(found[1]) == (3, 3, "Choice", None)


def test_label_inside_choices() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text">',
        '    <Choice value="a"/>',
        '    <Label value="b"/>',
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == (
        "<Label> must be placed directly inside <Labels>, <RectangleLabels>, <PolygonLabels> or <KeyPointLabels>"
    )
    assert where(problem) == (5, 5, "Label", None)


def test_tags_inside_an_object_or_a_control() -> None:
    found = problems_of(config(
        "<View>",
        '  <Text name="text" value="$text">',
        '    <Header value="x"/>',
        "  </Text>",
        '  <Choices name="c" toName="text">',
        '    <View><Choice value="a"/></View>',
        "  </Choices>",
        "</View>",
    ))
    assert [(p.message, where(p)) for p in found] == [
        ('<Header> cannot be placed inside <Text name="text">, which cannot contain other tags',
         (3, 5, "Header", None)),
        ('<View> cannot be placed inside <Choices name="c">, which can contain only <Choice>', (6, 5, "View", None)),
        ("<Choice> must be placed directly inside <Choices>", (6, 11, "Choice", None)),
    ]


def test_nested_choice_needs_allow_nested() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <Choices name="c" toName="text">',
        '    <Choice value="Animal">',
        '      <Choice value="Cat"/>',
        "    </Choice>",
        "  </Choices>",
        "</View>",
    ))
    assert problem.message == (
        'nested <Choice> inside <Choice>: set allowNested="true" on the <Choices> to allow nesting, '
        "or move it up one level"
    )
    assert where(problem) == (5, 7, "Choice", None)


def test_stray_text_in_a_view() -> None:
    problem = only_problem(config(
        "<View>",
        "  Please label the text below",
        '  <Text name="text" value="$text"/>',
        '  <TextArea name="a" toName="text"/>',
        "</View>",
    ))
    assert problem.message == (
        'text "Please label the text below" is not allowed inside <View>; put it in <Header value="..."/> or in an '
        "attribute"
    )
    assert where(problem) == (1, 1, "View", None)


def test_empty_header() -> None:
    problem = only_problem(config(
        "<View>",
        "  <Header/>",
        '  <Text name="text" value="$text"/>',
        '  <TextArea name="a" toName="text"/>',
        "</View>",
    ))
    assert problem.message == '<Header> has nothing to show; add value="..." or text inside the tag'
    assert where(problem) == (2, 3, "Header", None)


def test_image_needs_exactly_one_of_value_and_value_list() -> None:
    found = problems_of(config(
        "<View>",
        '  <Image name="a" value="$a" valueList="$many"/>',
        '  <Image name="b"/>',
        '  <TextArea name="t" toName="a,b"/>',
        "</View>",
    ))
    expected = 'needs exactly one of value="$image" (one image) or valueList="$images" (several images)'
    assert [(p.message, where(p)) for p in found] == [
        (f'<Image name="a"> {expected}', (2, 3, "Image", None)),
        (f'<Image name="b"> {expected}', (3, 3, "Image", None)),
    ]


def test_when_tag_name_must_name_a_tag() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <View visibleWhen="choice-selected" whenTagName="sentimnet">',
        '    <TextArea name="why" toName="text"/>',
        "  </View>",
        '  <Choices name="sentiment" toName="text"><Choice value="a"/></Choices>',
        "</View>",
    ))
    assert problem.message == (
        'whenTagName="sentimnet" on <View> names no tag; tags with names: "text", "why", "sentiment"'
    )
    assert where(problem) == (3, 39, "View", "whenTagName")


def test_invalid_visible_when() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text"/>',
        '  <TextArea name="why" toName="text" visibleWhen="always"/>',
        "</View>",
    ))
    assert problem.message.startswith(
        'invalid visibleWhen="always" on <TextArea name="why">: use one of "region-selected"'
    )
    assert where(problem) == (3, 38, "TextArea", "visibleWhen")


def test_attribute_position_is_found_on_a_continuation_line_and_not_inside_values() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text" highlightColor="value=\'x\' choice=1"/>',
        '  <Choices name="c" toName="text" required="true"',
        "           showInline='true'",
        '           choice="all">',
        '    <Choice value="a"/>',
        "  </Choices>",
        "</View>",
    ))
    assert where(problem) == (5, 12, "Choices", "choice")


def test_xml_errors_become_problems_with_a_position() -> None:
    problem = only_problem(config(
        "<View>",
        '  <Text name="text" value="$text">',
        "</View>",
    ))
    assert problem.message == (
        "not well-formed: mismatched tag </View>; expected </Text> to close <Text> from line 2, column 3"
    )
    assert where(problem) == (3, 1, None, None)


def test_doctype_in_a_config_is_refused() -> None:
    problem = only_problem('<!DOCTYPE View [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<View>&x;</View>')
    assert problem.message.startswith("DTDs (<!DOCTYPE ...>) are not allowed")
    assert where(problem) == (1, 1, None, None)


def test_all_problems_are_reported_at_once_sorted_by_position() -> None:
    text = config(
        "<View>",
        '  <Image name="img" value="image"/>',
        '  <Choices name="c" toName="img" choice="maybe">',
        '    <Choice value="x"/>',
        '    <Choice value="x"/>',
        "  </Choices>",
        '  <Rating name="c" toName="nothing" maxRating="-1" icon="thumb"/>',
        "</View>",
    )
    with pytest.raises(LabelConfigError) as caught:
        parse_label_config(text)
    found = caught.value.problems
    assert [(p.line, p.column, p.attribute) for p in found] == [
        (2, 21, "value"),
        (3, 34, "choice"),
        (5, 13, "value"),
        (7, 11, "name"),
        (7, 20, "toName"),
        (7, 37, "maxRating"),
        (7, 52, "icon"),
    ]
    assert str(caught.value).startswith("the labeling config has 7 problems:\n  line 2, column 21: invalid value=")
    assert str(found[3]) == (
        'line 7, column 11: duplicate name "c": <Choices name="c"> at line 3, column 3 already uses it; '
        "give every tag its own name"
    )


# ==================================================================================================
# The catalogue and the module's boundaries
# ==================================================================================================


def test_catalogue_covers_the_documented_tags() -> None:
    documented = {"View", "Header", "Text", "HyperText", "Image", "Audio", "Choices", "Choice", "Labels", "Label",
                  "RectangleLabels", "PolygonLabels", "KeyPointLabels", "TextArea", "Rating", "Number"}
    assert documented <= set(TAGS)
    for tag, spec in TAGS.items():
        assert spec["kind"] in {"layout", "object", "control", "item"}, tag
        assert set(spec.get("required", ())) <= set(spec["attrs"]), tag


def test_parse_returns_a_label_config() -> None:
    assert isinstance(parse_label_config(TEXT_CLASSIFICATION), LabelConfig)


def test_label_config_module_imports_no_web_code() -> None:
    code = (
        "import sys, workspace.workflow.label_config\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'litestar', 'sqlalchemy'}\n"
        "             or m.startswith(('workspace.web', 'workspace.app', 'workspace.db')))\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
