"""The building blocks of a settings section: a field with its default, doc line and check.

A section is a frozen dataclass whose fields are declared with ``setting(default, doc, check)``.
Building one (from ``params.yaml``, a run config, a training spec or Python code) checks every
value, so a bad one fails where it enters, with its key, what is allowed and where to fix it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from dreamer_core.errors import ConfigError


@dataclass(frozen=True)
class Check:
    """A predicate on one value and the words that say what it accepts."""

    ok: Callable[[Any], bool]
    expect: str


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None, multiple_of: int = 1) -> Check:
    words = "an integer" if lo is None else f"an integer in [{lo}, {hi}]"
    if multiple_of > 1:
        words = f"a multiple of {multiple_of} in [{lo}, {hi}]"
    lo_, hi_ = -(2**62) if lo is None else lo, 2**62 if hi is None else hi
    return Check(lambda v: isinstance(v, int) and not isinstance(v, bool) and lo_ <= v <= hi_
                 and v % multiple_of == 0, words)  # fmt: skip


def number(lo: float = -math.inf, hi: float = math.inf) -> Check:
    return Check(lambda v: _number(v) and lo <= v <= hi, f"a finite number in [{lo:g}, {hi:g}]")


def one_of(*options: Any) -> Check:
    return Check(lambda v: not isinstance(v, bool) and v in options, f"one of {list(options)}")


FLAG = Check(lambda v: isinstance(v, bool), "true or false")
TEXT = Check(lambda v: isinstance(v, str), 'a string ("" for none)')


def weights(keys: tuple[str, ...]) -> Check:
    def ok(v: Any) -> bool:
        return (isinstance(v, Mapping) and set(v) <= set(keys) and all(_number(x) and x >= 0 for x in v.values())
                and sum(v.values()) > 0)  # fmt: skip

    return Check(ok, f"a mapping of {list(keys)} to non-negative numbers with a positive sum")


def interval(lo: float, hi: float) -> Check:
    def ok(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(x) and lo <= x <= hi for x in v) \
            and v[0] <= v[1]  # fmt: skip

    return Check(ok, f"[low, high] with {lo:g} <= low <= high <= {hi:g}")


def items(each: Callable[[Any], bool], expect: str, min_len: int = 1, max_len: int = 2**31,
          distinct: bool = False, order: Callable[[Any, Any], bool] | None = None) -> Check:  # fmt: skip
    """A list whose length is in [min_len, max_len] and whose every element passes ``each``."""

    def ok(v: Any) -> bool:
        return (isinstance(v, (list, tuple)) and min_len <= len(v) <= max_len and all(each(x) for x in v)
                and (not distinct or len(set(v)) == len(v))
                and (order is None or all(order(a, b) for a, b in zip(v, v[1:], strict=False))))  # fmt: skip

    return Check(ok, expect)


def setting(default: Any, doc: str, check: Check) -> Any:
    """A section field: its default, the one line a user reads about it, and its check."""
    meta = {"doc": doc, "check": check}
    if isinstance(default, (dict, list)):
        frozen = tuple(default) if isinstance(default, list) else dict(default)
        if isinstance(default, dict):
            return dataclasses.field(default_factory=lambda: dict(frozen), metadata=meta)
        return dataclasses.field(default=frozen, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Section:
    """Base of every settings section: checks each field when built, turns lists into tuples, and
    offers ``from_mapping`` for values read from YAML or JSON. ``key`` is the section's name in
    ``params.yaml``."""

    key: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check: Check = f.metadata["check"]
            if not check.ok(value):
                raise ConfigError(f"{self.key}.{f.name} must be {check.expect}, got {value!r} ({f.metadata['doc']})")
            object.__setattr__(self, f.name, _coerce(hints[f.name], value))
        for ok, message in self.constraints():
            if not ok:
                raise ConfigError(f"{self.key}: {message}")

    def constraints(self) -> list[tuple[bool, str]]:
        """Rules between fields of the section: (holds, message naming the fields)."""
        return []

    @classmethod
    def from_mapping(cls, values: Any, where: str = "") -> Self:
        """Build from a mapping that may omit keys (they keep their defaults) but not add any.
        ``where`` prefixes error messages (``tiny.`` for params.yaml, ``run_config.`` ...)."""
        where = f"{where}{cls.key}"
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: must be a mapping, got {type(values).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; allowed are {sorted(allowed)}")
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where.removesuffix(cls.key)}{exc}") from None

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, dicts) in field order: what JSON specs, hashes and MLflow params hold."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def docs(cls) -> dict[str, str]:
        return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}


def _coerce(hint: Any, value: Any) -> Any:
    """Lists become tuples (frozen, hashable); an int stays an int where a float is allowed, as in
    Python's own typing, so what a profile wrote is what outputs record."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(value)
    if origin is dict:
        return dict(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value
