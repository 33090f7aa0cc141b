"""Label Studio labeling configs: parse, validate strictly, and describe what a project labels.

A team pastes the XML config it already uses in Label Studio; we accept the same tags and attributes
(see :data:`TAGS`) and refuse anything else with a message that says what is wrong, where (line and
column, 1-based) and how to fix it. All problems of a config are reported at once, sorted by
position, so a user fixes them in one pass instead of one per save.

Pure functions, no I/O: the XML goes through the project's one hardened parser
(:func:`workspace.lib.xmlsafe.parse_xml`), never through the stdlib parsers.

Choices made where Label Studio is lax:

* Tag and attribute names are case-sensitive and must be spelt as in Label Studio's documentation
  (``<View>``, ``toName``); a near miss gets a "did you mean" hint.
* The ``value`` of an object tag (``Text``, ``HyperText``, ``Image``, ``Audio``) must reference a task
  data field (``value="$image"``). Literal URLs are refused: the data belongs in the task, and a
  config must not make every annotator's browser fetch a fixed address.
* Boolean attributes take ``true`` or ``false`` (any case).
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from workspace.lib.xmlsafe import Element, XMLError, parse_xml

__all__ = [
    "CONTROL_TAGS",
    "OBJECT_TAGS",
    "TAGS",
    "ControlTag",
    "LabelConfig",
    "LabelConfigError",
    "LabelValue",
    "ObjectTag",
    "Problem",
    "parse_label_config",
    "removed_labels",
    "validate_label_config",
]

# --------------------------------------------------------------------------------------------------
# The catalogue. Attribute types: "text" (anything), "bool" (true/false), "int>=N" (whole number),
# "number" (any finite number), "number>0", "field" ("$name" of a task data field), "name" (a tag
# name), "names" (comma-separated tag names), "ref" (the name of another tag), "enum:a|b|c".
# "kind" is layout, object, control or item; "children" lists the tags allowed directly inside
# ("block" = any layout, object or control tag); "targets" lists the object tags a control may label.
# --------------------------------------------------------------------------------------------------

_VISIBILITY: dict[str, str] = {
    "visibleWhen": "enum:region-selected|no-region-selected|choice-selected|choice-unselected",
    "whenTagName": "ref",
    "whenLabelValue": "text",
    "whenChoiceValue": "text",
}
_TEXT_LIKE: dict[str, str] = {
    "name": "name",
    "value": "field",
    "valueType": "enum:url|text",
    "saveTextResult": "enum:yes|no",
    "encoding": "enum:none|base64|base64unicode",
    "selectionEnabled": "bool",
    "clickableLinks": "bool",
    "highlightColor": "text",
    "showLabels": "bool",
}
_CONTROL: dict[str, str] = {"name": "name", "toName": "names"}
_ANSWER: dict[str, str] = {
    "required": "bool",
    "requiredMessage": "text",
    "perRegion": "bool",
    "perItem": "bool",
    **_VISIBILITY,
}
_LABELS: dict[str, str] = {
    **_CONTROL,
    "choice": "enum:single|multiple",
    "maxUsages": "int>=1",
    "showInline": "bool",
    "value": "field",
    "opacity": "number",
    "fillColor": "text",
    "strokeColor": "text",
    "strokeWidth": "number",
}
_ALL_OBJECTS = ("Text", "HyperText", "Image", "Audio")
_LABEL_PARENTS = ("Labels", "RectangleLabels", "PolygonLabels", "KeyPointLabels")

TAGS: dict[str, dict[str, Any]] = {
    "View": {
        "kind": "layout",
        "attrs": {"display": "enum:block|inline", "background": "text", "style": "text", "className": "text",
                  "idAttr": "text", **_VISIBILITY},
        "children": "block",
    },
    "Header": {
        "kind": "layout",
        "attrs": {"value": "text", "size": "text", "style": "text", "underline": "bool"},
        "text": True,
    },
    "Style": {"kind": "layout", "attrs": {}, "text": True},
    "Text": {
        "kind": "object",
        "attrs": {**_TEXT_LIKE, "granularity": "enum:symbol|word|sentence|paragraph"},
        "required": ("name", "value"),
    },
    "HyperText": {
        "kind": "object",
        "attrs": {**_TEXT_LIKE, "inline": "bool", "granularity": "enum:symbol|word"},
        "required": ("name", "value"),
    },
    "Image": {
        "kind": "object",
        "attrs": {
            "name": "name", "value": "field", "valueList": "field", "width": "text", "height": "text",
            "maxWidth": "text", "maxHeight": "text", "zoom": "bool", "negativeZoom": "bool", "zoomBy": "number>0",
            "grid": "bool", "gridSize": "int>=1", "gridColor": "text", "zoomControl": "bool",
            "brightnessControl": "bool", "contrastControl": "bool", "rotateControl": "bool", "crosshair": "bool",
            "horizontalAlignment": "enum:left|center|right", "verticalAlignment": "enum:top|center|bottom",
            "defaultZoom": "enum:auto|original|fit", "crossOrigin": "enum:none|anonymous|use-credentials",
            "smoothing": "bool",
        },
        "required": ("name",),  # and one of value / valueList, checked separately
    },
    "Audio": {
        "kind": "object",
        "attrs": {
            "name": "name", "value": "field", "hotkey": "text", "sync": "ref", "height": "text",
            "cursorwidth": "text", "cursorcolor": "text", "defaultspeed": "number>0", "defaultscale": "number>0",
            "defaultzoom": "number>0", "defaultvolume": "number", "volume": "bool", "speed": "bool", "zoom": "bool",
            "waveheight": "text", "splitchannels": "bool", "decoder": "enum:webaudio|ffmpeg",
            "player": "enum:html5|webaudio", "spectrogram": "bool", "showLabels": "bool",
        },
        "required": ("name", "value"),
    },
    "Choices": {
        "kind": "control",
        "attrs": {**_CONTROL, "choice": "enum:single|single-radio|multiple", "showInline": "bool", "value": "field",
                  "allowNested": "bool", "layout": "text", **_ANSWER},
        "required": ("name", "toName"),
        "children": ("Choice",),
        "targets": _ALL_OBJECTS,
    },
    "Choice": {
        "kind": "item",
        "attrs": {"value": "text", "selected": "bool", "alias": "text", "hotkey": "text", "style": "text",
                  "html": "text", "hint": "text", "background": "text"},
        "required": ("value",),
        "children": ("Choice",),  # only when the enclosing <Choices> has allowNested="true"
    },
    "Labels": {
        "kind": "control", "attrs": dict(_LABELS), "required": ("name", "toName"), "children": ("Label",),
        "targets": ("Text", "HyperText", "Audio"),
    },
    "RectangleLabels": {
        "kind": "control",
        "attrs": {**_LABELS, "canRotate": "bool", "smart": "bool", "smartOnly": "bool"},
        "required": ("name", "toName"), "children": ("Label",), "targets": ("Image",),
    },
    "PolygonLabels": {
        "kind": "control",
        "attrs": {**_LABELS, "pointSize": "enum:small|medium|large", "pointStyle": "enum:circle|rectangle",
                  "smart": "bool", "smartOnly": "bool", "snap": "enum:none|pixel"},
        "required": ("name", "toName"), "children": ("Label",), "targets": ("Image",),
    },
    "KeyPointLabels": {
        "kind": "control",
        "attrs": {**_LABELS, "smart": "bool", "smartOnly": "bool", "snap": "enum:none|pixel"},
        "required": ("name", "toName"), "children": ("Label",), "targets": ("Image",),
    },
    "Label": {
        "kind": "item",
        "attrs": {"value": "text", "selected": "bool", "maxUsages": "int>=1", "alias": "text", "hotkey": "text",
                  "showAlias": "bool", "aliasStyle": "text", "size": "text", "background": "text",
                  "selectedColor": "text", "granularity": "enum:symbol|word", "groupCancontain": "text",
                  "hint": "text"},
        "required": ("value",),
    },
    "TextArea": {
        "kind": "control",
        "attrs": {**_CONTROL, "value": "text", "label": "text", "placeholder": "text", "maxSubmissions": "int>=1",
                  "editable": "bool", "skipDuplicates": "bool", "transcription": "bool",
                  "displayMode": "enum:tag|region-list", "rows": "int>=1", "showSubmitButton": "bool", **_ANSWER},
        "required": ("name", "toName"),
        "targets": _ALL_OBJECTS,
    },
    "Rating": {
        "kind": "control",
        "attrs": {**_CONTROL, "maxRating": "int>=1", "icon": "enum:star|heart|fire|smile",
                  "size": "enum:small|medium|large", "defaultValue": "int>=0", "hotkey": "text", **_ANSWER},
        "required": ("name", "toName"),
        "targets": _ALL_OBJECTS,
    },
    "Number": {
        "kind": "control",
        "attrs": {**_CONTROL, "min": "number", "max": "number", "step": "number>0", "defaultValue": "number",
                  "hotkey": "text", "slider": "bool", **_ANSWER},
        "required": ("name", "toName"),
        "targets": _ALL_OBJECTS,
    },
}

OBJECT_TAGS: frozenset[str] = frozenset(tag for tag, spec in TAGS.items() if spec["kind"] == "object")
CONTROL_TAGS: frozenset[str] = frozenset(tag for tag, spec in TAGS.items() if spec["kind"] == "control")
_ITEM_PARENTS: dict[str, tuple[str, ...]] = {"Choice": ("Choices",), "Label": _LABEL_PARENTS}
_FIELD_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_-]*)")
_NAME_RE = re.compile(r"[^\s,]+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_VIEW = Element("View")  # stands in for a root that is not a <View>
_ATTRIBUTE_RE = re.compile(r"""([^\s=/>]+)\s*=\s*(?:"[^"]*"|'[^']*')""")


# --------------------------------------------------------------------------------------------------
# Problems and results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, at a 1-based position, on a tag and possibly an attribute."""

    message: str
    line: int
    column: int
    tag: str | None = None
    attribute: str | None = None

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class LabelConfigError(ValueError):
    """The config is not acceptable; ``problems`` lists every reason, sorted by position."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems, key=lambda p: (p.line, p.column))
        count = len(self.problems)
        header = "the labeling config has 1 problem" if count == 1 else f"the labeling config has {count} problems"
        super().__init__(header + ":\n" + "\n".join(f"  {problem}" for problem in self.problems))


@dataclass(frozen=True)
class ObjectTag:
    """A tag that shows task data (``Text``, ``Image``, ...): what gets labelled."""

    name: str
    tag: str
    field: str | None
    attrs: Mapping[str, str] = field(hash=False)
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class LabelValue:
    """One ``<Choice>`` or ``<Label>``; annotation results store ``result_value``."""

    value: str
    attrs: Mapping[str, str] = field(hash=False)
    line: int = 1
    column: int = 1

    @property
    def alias(self) -> str | None:
        return self.attrs.get("alias")

    @property
    def result_value(self) -> str:
        """Label Studio writes the alias, when there is one, into annotation results."""
        return self.alias or self.value


@dataclass(frozen=True)
class ControlTag:
    """A tag that produces annotation results (``Choices``, ``RectangleLabels``, ...)."""

    name: str
    tag: str
    to_names: tuple[str, ...]
    labels: tuple[LabelValue, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict, hash=False)
    dynamic_field: str | None = None
    line: int = 1
    column: int = 1

    @property
    def to_name(self) -> str:
        return self.to_names[0]

    @property
    def result_type(self) -> str:
        """The ``type`` of this control's results in Label Studio's format (``choices``, ``labels``...)."""
        return self.tag.lower()

    @property
    def label_values(self) -> tuple[str, ...]:
        return tuple(label.value for label in self.labels)


@dataclass(frozen=True)
class LabelConfig:
    """A validated config: its object tags, control tags and the task data fields it reads."""

    objects: tuple[ObjectTag, ...]
    controls: tuple[ControlTag, ...]
    data_fields: frozenset[str]
    root: Element = field(hash=False, compare=False, repr=False)
    # Attributes the product does not know: ignored, as Label Studio does, and reported here.
    warnings: tuple[Problem, ...] = field(default=(), hash=False, compare=False)

    def object(self, name: str) -> ObjectTag:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f'no object tag named "{name}"; object tags: {_quoted(o.name for o in self.objects)}')

    def control(self, name: str) -> ControlTag:
        for control in self.controls:
            if control.name == name:
                return control
        raise KeyError(f'no control tag named "{name}"; control tags: {_quoted(c.name for c in self.controls)}')

    def labels_of(self, control_name: str) -> tuple[str, ...]:
        """The ``value`` of each Choice/Label of a control, in document order."""
        return self.control(control_name).label_values

    def used_label_values(self) -> dict[str, frozenset[str]]:
        """Per control with choices or labels, the values its annotation results can contain."""
        return {c.name: frozenset(label.result_value for label in c.labels) for c in self.controls if c.labels}


def removed_labels(old: LabelConfig, new: LabelConfig) -> dict[str, set[str]]:
    """Result values that ``old`` allows and ``new`` no longer does, per control name.

    A control missing from ``new`` loses all its values. Used to refuse a config change that would
    orphan labels still present in annotations. Controls with dynamic labels (``value="$field"``)
    have no fixed list and are not compared.
    """
    new_values = new.used_label_values()
    removed: dict[str, set[str]] = {}
    for control_name, values in old.used_label_values().items():
        gone = set(values - new_values.get(control_name, frozenset()))
        if gone:
            removed[control_name] = gone
    return removed


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def validate_label_config(text: str) -> list[Problem]:
    """Every problem of ``text`` as a config, sorted by position; empty when it is valid."""
    try:
        parse_label_config(text)
    except LabelConfigError as error:
        return error.problems
    return []


@lru_cache(maxsize=64)
def parse_label_config(text: str) -> LabelConfig:
    """Parse and validate a Label Studio config, raising :class:`LabelConfigError` with all problems.

    Every annotation and prediction is checked against its project's config: the parsed config is
    kept per text (a frozen value; its ``root`` element is shared, so it is only ever read), and a
    project's config is parsed once per process, not once per request. Errors are not kept."""
    try:
        root = parse_xml(text)
    except XMLError as error:
        raise LabelConfigError([Problem(error.message, error.line or 1, error.column or 1)]) from None
    checker = _Checker(_Source(text))
    checker.check(root)
    if checker.problems:
        # With real problems, the notes about unknown attributes help find them (toname for toName).
        raise LabelConfigError(checker.problems + checker.notes)
    config = checker.build(root)
    # Label Studio ignores attributes it does not know, and configs written for it carry some: accept
    # them, and say which were ignored (with the near miss, if any).
    return replace(config, warnings=tuple(sorted(checker.notes, key=lambda p: (p.line, p.column))))


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


class _Source:
    """Maps 1-based positions to string indexes so attribute errors can point at the attribute."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]

    def index(self, line: int, column: int) -> int:
        return self._line_starts[line - 1] + column - 1

    def position(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, index) - 1
        return line + 1, index - self._line_starts[line] + 1

    def attribute_position(self, element: Element, attribute: str) -> tuple[int, int]:
        """Where ``attribute`` is written in ``element``'s start tag (the element's position if unsure)."""
        start = self.index(element.line, element.column)
        if not self.text.startswith("<" + element.tag, start):
            return element.line, element.column
        cursor = start + 1 + len(element.tag)
        while True:
            match = _ATTRIBUTE_RE.search(self.text, cursor)
            if match is None or ">" in self.text[cursor : match.start()]:
                return element.line, element.column
            if match.group(1) == attribute:
                return self.position(match.start())
            cursor = match.end()


def _quoted(names: Iterable[str]) -> str:
    listed = [f'"{name}"' for name in names]
    return ", ".join(listed) if listed else "(none)"


def _describe(element: Element) -> str:
    name = element.attrs.get("name")
    return f'<{element.tag} name="{name}">' if name else f"<{element.tag}>"


def _suggestion(word: str, candidates: Iterable[str]) -> str:
    """A "did you mean" hint: exact match ignoring case first, then a close spelling."""
    candidates = list(candidates)
    for candidate in candidates:
        if candidate.lower() == word.lower():
            return f" (did you mean {candidate}?)"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _tags_or(tags: Iterable[str]) -> str:
    """``<A>``, ``<A> or <B>``, ``<A>, <B> or <C>``."""
    listed = [f"<{tag}>" for tag in tags]
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " or " + listed[-1]


def _type_error(kind: str, value: str) -> str | None:
    """Why ``value`` does not fit the catalogue type ``kind``; None when it fits."""
    if kind in ("text", "ref"):
        return None
    if kind == "bool":
        return None if value.lower() in ("true", "false") else 'use "true" or "false"'
    if kind.startswith("int>="):
        minimum = int(kind[5:])
        ok = re.fullmatch(r"[+-]?\d+", value.strip()) is not None and int(value) >= minimum
        return None if ok else f"use a whole number of at least {minimum}"
    if kind in ("number", "number>0"):
        number = _as_number(value)
        if number is None:
            return "use a number, such as 1 or 0.5"
        return "use a number greater than 0" if kind == "number>0" and number <= 0 else None
    if kind == "field":
        return None if _FIELD_RE.fullmatch(value) else 'reference a task data field, such as "$text" or "$image"'
    if kind == "name":
        return None if _NAME_RE.fullmatch(value) else "use a non-empty name without spaces or commas"
    if kind == "names":
        parts = value.split(",")
        ok = all(_NAME_RE.fullmatch(part.strip()) for part in parts)
        return None if ok else "use the name of an object tag, or several names separated by commas"
    if kind.startswith("enum:"):
        allowed = kind[5:].split("|")
        return None if value in allowed else f"use one of {_quoted(allowed)}"
    raise AssertionError(f"unknown attribute type {kind!r} in the catalogue")  # pragma: no cover


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass
class _Checker:
    """Walks the tree once, collecting problems and the named tags for the cross-reference checks."""

    source: _Source
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # unknown attributes: ignored, not refused
    named: dict[str, Element] = field(default_factory=dict)
    objects: list[Element] = field(default_factory=list)
    controls: list[Element] = field(default_factory=list)
    items: dict[int, list[Element]] = field(default_factory=dict)  # id(control) -> its Choice/Label
    known: list[Element] = field(default_factory=list)  # every element with a known tag, in order

    # -- reporting ---------------------------------------------------------------------------------

    def at_element(self, element: Element, message: str) -> None:
        self.problems.append(Problem(message, element.line, element.column, element.tag))

    def at_attribute(self, element: Element, attribute: str, message: str) -> None:
        line, column = self.source.attribute_position(element, attribute)
        self.problems.append(Problem(message, line, column, element.tag, attribute))

    # -- the walk ----------------------------------------------------------------------------------

    def check(self, root: Element) -> None:
        if root.tag == "View":
            self.visit(root, parent=None, control=None)
        else:
            # One problem for the root, then its children as if it were the <View> it should be:
            # checking the misplaced root as a tag in its own right would only bury the fix in noise.
            self.at_element(root, f"the root tag must be <View>, not <{root.tag}>{_suggestion(root.tag, ['View'])}; "
                                  "wrap the config in <View>...</View>")
            for child in root.children:
                self.visit(child, parent=_VIEW, control=None)
        self.check_references()
        if not self.objects:
            self.at_element(root, "the config has no object tag to label; add one of <Text>, <HyperText>, <Image> "
                                  'or <Audio>, such as <Text name="text" value="$text"/>')
        if not self.controls:
            self.at_element(root, "the config has no control tag to label with; add one of "
                                  f"{', '.join(f'<{t}>' for t in sorted(CONTROL_TAGS))}")

    def visit(self, element: Element, parent: Element | None, control: Element | None) -> None:
        spec = TAGS.get(element.tag)
        if spec is None:
            self.at_element(element, f"unknown tag <{element.tag}>{_suggestion(element.tag, TAGS)}; "
                                     f"allowed tags: {', '.join(sorted(TAGS))}")
        else:
            self.known.append(element)
            self.check_placement(element, parent, control)
            self.check_attributes(element, spec)
            self.check_text(element, spec)
            control = self.register(element, spec, control)
        for child in element.children:
            self.visit(child, element, control)

    def register(self, element: Element, spec: dict[str, Any], control: Element | None) -> Element | None:
        """Remember names, objects, controls and items; return the control enclosing the children."""
        name = element.attrs.get("name")
        if name:
            if name in self.named:
                first = self.named[name]
                self.at_attribute(element, "name", f'duplicate name "{name}": {_describe(first)} at line '
                                                   f"{first.line}, column {first.column} already uses it; "
                                                   "give every tag its own name")
            else:
                self.named[name] = element
        if spec["kind"] == "object":
            self.objects.append(element)
        elif spec["kind"] == "control":
            self.controls.append(element)
            self.items[id(element)] = []
            return element
        elif spec["kind"] == "item" and control is not None:
            self.items[id(control)].append(element)
        return control

    def check_placement(self, element: Element, parent: Element | None, control: Element | None) -> None:
        if parent is None or parent.tag not in TAGS:
            if element.tag in _ITEM_PARENTS:
                self.at_element(element, self.misplaced_item(element))
            return
        allowed = TAGS[parent.tag].get("children", ())
        if allowed == "block":
            allowed = tuple(t for t, s in TAGS.items() if s["kind"] != "item")
        if element.tag in _ITEM_PARENTS and element.tag not in allowed:
            self.at_element(element, self.misplaced_item(element))
        elif element.tag not in allowed:
            inside = f"can contain only {_tags_or(allowed)}" if allowed else "cannot contain other tags"
            self.at_element(element, f"<{element.tag}> cannot be placed inside {_describe(parent)}, which {inside}")
        elif parent.tag == "Choice" and (control is None or control.attrs.get("allowNested", "").lower() != "true"):
            self.at_element(element, f"nested <Choice> inside {_describe(parent)}: set allowNested=\"true\" "
                                     "on the <Choices> to allow nesting, or move it up one level")

    @staticmethod
    def misplaced_item(element: Element) -> str:
        return f"<{element.tag}> must be placed directly inside {_tags_or(_ITEM_PARENTS[element.tag])}"

    def check_attributes(self, element: Element, spec: dict[str, Any]) -> None:
        allowed: dict[str, str] = spec["attrs"]
        for attribute, value in element.attrs.items():
            kind = allowed.get(attribute)
            if kind is None:
                listed = ", ".join(allowed) if allowed else "none"
                line, column = self.source.attribute_position(element, attribute)
                self.notes.append(Problem(f"unknown attribute {attribute} on <{element.tag}>"
                                          f"{_suggestion(attribute, allowed)}; allowed: {listed}",
                                          line, column, element.tag, attribute))
                continue
            reason = _type_error(kind, value)
            if reason:
                self.at_attribute(element, attribute, f'invalid {attribute}="{value}" on {_describe(element)}: '
                                                      f"{reason}")
        for attribute in spec.get("required", ()):
            if attribute not in element.attrs:
                self.at_element(element, self.missing_message(element, attribute))
        self.check_special_attributes(element)

    def missing_message(self, element: Element, attribute: str) -> str:
        how = {
            "name": "give it a unique name, such as name=\"label\"",
            "toName": "set toName to the name of the object tag it labels",
            "value": (f'set value to the task data field it shows, such as value="${element.tag.lower()}"'
                      if element.tag in OBJECT_TAGS else "set value to the text of the option"),
        }[attribute]
        return f"{_describe(element)} is missing the required attribute {attribute}; {how}"

    def check_special_attributes(self, element: Element) -> None:
        """Rules that involve more than one attribute of the same tag."""
        attrs = element.attrs
        if element.tag == "Image" and ("value" in attrs) == ("valueList" in attrs):
            self.at_element(element, f'{_describe(element)} needs exactly one of value="$image" (one image) '
                                     'or valueList="$images" (several images)')
        if element.tag == "Header" and "value" not in attrs and not element.text.strip():
            self.at_element(element, '<Header> has nothing to show; add value="..." or text inside the tag')
        if element.tag == "Number":
            low, high = _as_number(attrs.get("min", "")), _as_number(attrs.get("max", ""))
            if low is not None and high is not None and low > high:
                self.at_attribute(element, "max", f'{_describe(element)} has max="{attrs["max"]}" below '
                                                  f'min="{attrs["min"]}"; make max at least min')

    def check_text(self, element: Element, spec: dict[str, Any]) -> None:
        if element.text.strip() and not spec.get("text"):
            snippet = element.text.strip()[:30]
            self.at_element(element, f'text "{snippet}" is not allowed inside <{element.tag}>; put it in '
                                     '<Header value="..."/> or in an attribute')

    # -- cross references --------------------------------------------------------------------------

    def check_references(self) -> None:
        for control in self.controls:
            self.check_targets(control)
            self.check_items(control)
        for element in self.known:
            self.check_when_tag_name(element)

    def check_targets(self, control: Element) -> None:
        to_name = control.attrs.get("toName")
        if to_name is None or _type_error("names", to_name):
            return
        targets: tuple[str, ...] = TAGS[control.tag]["targets"]
        object_names = [o.attrs.get("name", "") for o in self.objects]
        for target_name in (part.strip() for part in to_name.split(",")):
            target = self.named.get(target_name)
            if target is None:
                self.at_attribute(control, "toName", f'{_describe(control)} has toName="{target_name}", but no '
                                                     f"object tag has that name; object tags: {_quoted(object_names)}")
            elif target.tag not in OBJECT_TAGS:
                self.at_attribute(control, "toName", f'{_describe(control)} has toName="{target_name}", which is '
                                                     f"{_describe(target)}, not an object tag; object tags: "
                                                     f"{_quoted(object_names)}")
            elif target.tag not in targets:
                article = "an" if targets[0][0] in "AEIOU" else "a"
                self.at_attribute(control, "toName", f"{_describe(control)} cannot label {_describe(target)}; "
                                                     f"point toName at {article} {_tags_or(targets)} tag")

    def check_items(self, control: Element) -> None:
        items = self.items[id(control)]
        spec = TAGS[control.tag]
        if "children" in spec and not items and "value" not in control.attrs:
            child = spec["children"][0]
            self.at_element(control, f"{_describe(control)} has no <{child}>; add at least one "
                                     f'<{child} value="..."/> inside it')
        seen_values: dict[str, Element] = {}
        seen_results: dict[str, Element] = {}
        for item in items:
            value = item.attrs.get("value")
            if value is None:
                continue
            if value in seen_values:
                self.at_attribute(item, "value", f'duplicate <{item.tag}> value "{value}" in {_describe(control)}; '
                                                 "each option of a control must be different")
                continue
            seen_values[value] = item
            result = item.attrs.get("alias") or value
            if result in seen_results:
                self.at_attribute(item, "alias" if "alias" in item.attrs else "value",
                                  f'<{item.tag} value="{value}"> in {_describe(control)} would be saved as '
                                  f'"{result}", like another option; use a different alias')
            seen_results[result] = item

    def check_when_tag_name(self, element: Element) -> None:
        ref = element.attrs.get("whenTagName")
        if ref is not None and ref not in self.named:
            self.at_attribute(element, "whenTagName", f'whenTagName="{ref}" on {_describe(element)} names no tag; '
                                                      f"tags with names: {_quoted(self.named)}")

    # -- building the result -----------------------------------------------------------------------

    def build(self, root: Element) -> LabelConfig:
        objects = tuple(_object_tag(e) for e in self.objects)
        controls = tuple(_control_tag(e, self.items[id(e)]) for e in self.controls)
        return LabelConfig(objects, controls, frozenset(_data_fields(root)), root)


def _field_name(value: str | None) -> str | None:
    match = _FIELD_RE.fullmatch(value or "")
    return match.group(1) if match else None


def _object_tag(element: Element) -> ObjectTag:
    value = element.attrs.get("value") or element.attrs.get("valueList")
    return ObjectTag(element.attrs["name"], element.tag, _field_name(value), dict(element.attrs),
                     element.line, element.column)


def _control_tag(element: Element, items: list[Element]) -> ControlTag:
    labels = tuple(LabelValue(i.attrs["value"], dict(i.attrs), i.line, i.column) for i in items)
    options = {k: v for k, v in element.attrs.items() if k not in ("name", "toName")}
    dynamic = _field_name(element.attrs.get("value")) if TAGS[element.tag].get("children") else None
    to_names = tuple(part.strip() for part in element.attrs["toName"].split(","))
    return ControlTag(element.attrs["name"], element.tag, to_names, labels, options, dynamic,
                      element.line, element.column)


def _data_fields(root: Element) -> Iterator[str]:
    """Fields read from task data: object values, Header values and dynamic choices/labels."""
    for element in root.iter():
        spec = TAGS.get(element.tag, {})
        if spec.get("kind") == "object":
            keys: tuple[str, ...] = ("value", "valueList")
        elif element.tag == "Header" or (spec.get("kind") == "control" and "children" in spec):
            keys = ("value",)
        else:
            continue
        for key in keys:
            name = _field_name(element.attrs.get(key))
            if name:
                yield name
