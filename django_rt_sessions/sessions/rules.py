"""What a JSON value must be: the value rules of the session fields (and of other preset options).

A `Rule` both checks a value (`problem`, a message naming the value) and says what it allows
(`describe`, for the docs, the admin's help and the OpenAPI schema), so errors and docs cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..redaction import UNSTORABLE, unstorable_reason

Kind = Literal["object", "choice", "text", "number", "integer", "list", "boolean"]


@dataclass(frozen=True)
class Choice:
    value: str
    label: Any  # a lazy translation
    ga_only: bool = False


@dataclass(frozen=True)
class Rule:
    """What a JSON value must be. `describe()` and `problem()` both read it, so docs and errors agree."""

    kind: Kind
    choices: tuple[Choice, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_length: int = 0
    max_length: int | None = None
    pattern: str | None = None  # fullmatch
    pattern_text: str = ""  # what the pattern means, for messages
    forbidden: str = ""  # characters a text may not hold
    forbidden_text: str = ""
    single_line: bool = False
    not_blank: bool = False  # more than whitespace
    items: Rule | None = None  # for lists
    min_items: int = 0
    max_items: int | None = None
    distinct: bool = False

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(choice.value for choice in self.choices)

    def problem(self, value: Any) -> str | None:
        """Why `value` breaks this rule (naming the value), or None."""
        if self.kind == "choice":
            if isinstance(value, str) and value in self.values:
                return None
            return f"{show_value(value)} is not one of {', '.join(self.values)}."
        if self.kind == "text":
            return self._text_problem(value)
        if self.kind in ("number", "integer"):
            whole = self.kind == "integer"
            ok_type = is_int(value) if whole else is_number(value)
            low, high = self.minimum, self.maximum
            if ok_type and (low is None or value >= low) and (high is None or value <= high):
                return None
            what = "a whole number" if whole else "a number"
            return f"{show_value(value)} is not {what} from {_num(low)} to {_num(high)}."
        if self.kind == "list":
            return self._list_problem(value)
        if self.kind == "boolean":
            return None if isinstance(value, bool) else f"{show_value(value)} is not true or false."
        raise AssertionError(f"no value rule for {self.kind}")  # objects are checked field by field

    def _text_problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{show_value(value)} is not a string."
        reason = unstorable_reason(value)
        if reason:
            return f"The text {reason}."
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"{show_value(value)} is not {self.pattern_text}."
        if len(value) < self.min_length:
            return (
                "Must not be empty."
                if self.min_length == 1 and not value
                else (f"{show_value(value)} is shorter than {self.min_length} characters.")
            )
        if self.not_blank and not value.strip():
            return "Must not be blank."
        if self.max_length is not None and len(value) > self.max_length:
            return f"Has {len(value)} characters; at most {self.max_length} are allowed."
        if self.single_line and ("\r" in value or "\n" in value):
            return f"{show_value(value)} must be on one line."
        bad = sorted({c for c in value if c in self.forbidden})
        if bad:
            return f"{show_value(value)} holds {' and '.join(map(repr, bad))}, which {self.forbidden_text}."
        return None

    def _list_problem(self, value: Any) -> str | None:
        if not isinstance(value, list):
            return f"{show_value(value)} is not a list."
        if len(value) < self.min_items:
            return f"Must list at least {self.min_items}." if value else "Must not be an empty list."
        if self.max_items is not None and len(value) > self.max_items:
            return f"Lists {len(value)}; at most {self.max_items} are allowed."
        assert self.items is not None
        for index, item in enumerate(value):
            problem = self.items.problem(item)
            if problem:
                return f"Item {index + 1}: {problem}"
        if self.distinct:
            seen: set[Any] = set()
            for item in value:
                if _hashable(item) in seen:
                    return f"Lists {show_value(item)} twice."
                seen.add(_hashable(item))
        return None

    def describe(self) -> str:
        """The allowed values in words (the docs' table)."""
        if self.kind == "choice":
            return ", ".join(f"`{c.value}`" + (" (GA only)" if c.ga_only else "") for c in self.choices)
        if self.kind == "text":
            parts = [self.pattern_text] if self.pattern_text else ["text"]
            if self.min_length:
                parts.append("not empty")
            if self.max_length is not None:
                parts.append(f"at most {self.max_length} characters")
            if self.single_line:
                parts.append("one line")
            if self.forbidden_text:
                parts.append(f"no {' '.join(f'`{c}`' for c in self.forbidden)}")
            return ", ".join(parts)
        if self.kind in ("number", "integer"):
            what = "whole number" if self.kind == "integer" else "number"
            return f"{what} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.kind == "list":
            assert self.items is not None
            count = f"{self.min_items} to {self.max_items}" if self.max_items else f"{self.min_items} or more"
            distinct = " distinct" if self.distinct else ""
            return f"list of {count}{distinct}: {self.items.describe()}"
        if self.kind == "boolean":
            return "`true` or `false`"
        return "object"


def is_int(value: Any) -> bool:
    """A JSON integer (true and false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _num(value: float | None) -> str:
    return "any" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def show_value(value: Any) -> str:
    """A value as shown in a message: short, and always storable (odd characters replaced)."""
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(UNSTORABLE.sub("\ufffd", shown))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
