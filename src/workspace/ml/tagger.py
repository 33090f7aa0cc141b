"""The built-in dictionary and pattern tagger: spans of a text labeled from a user's term list.

Settings are two texts, one rule per line, ``term<TAB>Label`` or ``term => Label``:

* **terms** are literal words or phrases, matched case-insensitively as whole words;
* **patterns** are regular expressions (the ``regex`` module's syntax), matched as written.

:func:`parse_rules` checks them against the project's ``Labels`` control and reports the first
problem with its line. Patterns are user input run over every task, so they are capped (length and
count) and every match runs under a time limit (``regex``'s ``timeout``): a pattern that backtracks
catastrophically fails the job with a message naming it instead of hanging a worker.

Overlapping matches are resolved left to right, longer first; each span is one region
``{"type": "labels", "value": {"start", "end", "text", "labels"}}`` with score 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import regex

from workspace.tenancy.errors import Invalid, ServiceError

__all__ = ["Rules", "parse_rules", "tag", "MAX_TERMS", "MAX_PATTERNS", "MAX_PATTERN_CHARS", "MATCH_TIMEOUT"]

MAX_TERMS = 20_000
MAX_TERM_CHARS = 200
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 200
MATCH_TIMEOUT = 1.0  # seconds for one pattern over one text
MAX_SPANS = 1000  # per text


@dataclass(frozen=True)
class Rules:
    terms: dict[str, str]  # lowercased term -> label
    patterns: tuple[tuple[str, regex.Pattern[str], str], ...]  # (source, compiled, label)
    term_pattern: regex.Pattern[str] | None

    @property
    def empty(self) -> bool:
        return not self.terms and not self.patterns


def _split(line: str) -> tuple[str, str] | None:
    if "\t" in line:
        left, _, right = line.rpartition("\t")
    elif "=>" in line:
        left, _, right = line.rpartition("=>")
    else:
        return None
    return left.strip(), right.strip()


def _lines(text: str) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n")
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _label(label: str, labels: tuple[str, ...], where: str, field: str) -> str:
    if label in labels:
        return label
    folded = {value.casefold(): value for value in labels}
    if label.casefold() in folded:
        return folded[label.casefold()]
    raise Invalid(f"{where}: \u201c{label}\u201d is not a label of this project; use one of "
                  + ", ".join(f"\u201c{v}\u201d" for v in labels) + ".", field=field)


def parse_rules(terms_text: str, patterns_text: str, labels: tuple[str, ...]) -> Rules:
    """The tagger's rules, or Invalid naming the field and line of the first problem."""
    terms: dict[str, str] = {}
    for number, line in _lines(terms_text or ""):
        parts = _split(line)
        where = f"Terms, line {number}"
        if parts is None or not parts[0] or not parts[1]:
            raise Invalid(f"{where}: write a term, then a tab or \u201c=>\u201d, then its label "
                          "(for example \u201cParis => Location\u201d).", field="terms")
        term, label = parts
        if len(term) > MAX_TERM_CHARS:
            raise Invalid(f"{where}: the term is longer than {MAX_TERM_CHARS} characters.", field="terms")
        terms[term.casefold()] = _label(label, labels, where, "terms")
        if len(terms) > MAX_TERMS:
            raise Invalid(f"At most {MAX_TERMS:,} terms; split the list over several taggers.", field="terms")
    patterns: list[tuple[str, regex.Pattern[str], str]] = []
    for number, line in _lines(patterns_text or ""):
        parts = _split(line)
        where = f"Patterns, line {number}"
        if parts is None or not parts[0] or not parts[1]:
            raise Invalid(f"{where}: write a regular expression, then a tab or \u201c=>\u201d, then its label "
                          "(for example \u201c\\d{4}-\\d{2}-\\d{2} => Date\u201d).", field="patterns")
        source, label = parts
        if len(source) > MAX_PATTERN_CHARS:
            raise Invalid(f"{where}: the pattern is longer than {MAX_PATTERN_CHARS} characters.", field="patterns")
        if len(patterns) >= MAX_PATTERNS:
            raise Invalid(f"At most {MAX_PATTERNS} patterns.", field="patterns")
        try:
            compiled = regex.compile(source, regex.VERSION0)
        except (regex.error, ValueError, OverflowError) as exc:
            raise Invalid(f"{where}: {source!r} is not a valid regular expression ({exc}).", field="patterns") from None
        if compiled.search("", timeout=MATCH_TIMEOUT) is not None:
            raise Invalid(f"{where}: {source!r} matches empty text; make it match at least one character "
                          "(use + rather than *).", field="patterns")
        patterns.append((source, compiled, _label(label, labels, where, "patterns")))
    term_pattern = None
    if terms:
        alternatives = "|".join(regex.escape(t) for t in sorted(terms, key=len, reverse=True))
        term_pattern = regex.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", regex.IGNORECASE | regex.VERSION0)
    return Rules(terms=terms, patterns=tuple(patterns), term_pattern=term_pattern)


def _matches(rules: Rules, text: str) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    if rules.term_pattern is not None:
        try:
            for m in rules.term_pattern.finditer(text, timeout=MATCH_TIMEOUT * 5):
                label = rules.terms.get(m.group(0).casefold())
                if label is not None:
                    found.append((m.start(), m.end(), label))
        except TimeoutError:
            raise ServiceError("The term list took too long to match one task's text; shorten the list.") from None
    for source, compiled, label in rules.patterns:
        try:
            for m in compiled.finditer(text, timeout=MATCH_TIMEOUT):
                if m.end() > m.start():
                    found.append((m.start(), m.end(), label))
        except TimeoutError:
            raise ServiceError(f"The pattern {source!r} took longer than {MATCH_TIMEOUT:g} s on one task's text "
                               "(it backtracks too much); simplify it.") from None
    return found


def tag(rules: Rules, text: str, *, from_name: str, to_name: str) -> list[dict[str, object]]:
    """The regions for ``text``: non-overlapping spans, earliest first, the longer of two at one start."""
    spans = sorted(_matches(rules, text), key=lambda s: (s[0], -(s[1] - s[0])))
    regions: list[dict[str, object]] = []
    end_of_last = -1
    for start, end, label in spans:
        if start < end_of_last:
            continue
        end_of_last = end
        regions.append({"id": f"tag-{len(regions)}", "from_name": from_name, "to_name": to_name, "type": "labels",
                        "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]},
                        "score": 1.0})
        if len(regions) >= MAX_SPANS:
            break
    return regions
