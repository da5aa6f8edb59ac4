"""Typed config sections from plain mappings (YAML, JSON, `--set`), checked when they are read.

Every section of a config file is a dataclass; `from_mapping` is the one place that turns a
mapping into it. A mistake is reported with the file, the section, the key and, for a typo,
the closest valid key, at load time: before any process group, corpus or model exists.
The module sits at the package's ground floor (no vlengine imports), so models and training
build their sections with the same function.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing


class UserError(Exception):
    """A mistake the user can fix (a config key, a path, a flag): reported as one line, no traceback."""


class ConfigError(UserError, ValueError):
    """A config value that is misspelt, of the wrong type or out of range. A ValueError for older callers."""


def closest(name: str, valid) -> str | None:
    """The valid name a typo most likely meant, or None."""
    found = difflib.get_close_matches(str(name), sorted(valid), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key_message(key: str, valid, source: str, section: str) -> str:
    """'FILE: unknown masking setting 'mlm_prb' (did you mean 'mlm_prob'?)'"""
    guess = closest(key, valid)
    hint = f"did you mean {guess!r}?" if guess else f"valid: {', '.join(sorted(valid))}"
    what = f"{section} setting" if section else "section"
    return f"{source}: unknown {what} {key!r} ({hint})"


def check_mapping(cls, mapping, source: str, section: str, *, exclude: tuple[str, ...] = ()) -> dict:
    """The values of `mapping` converted to the field types of dataclass `cls` (unknown keys refused)."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        what = f"section {section!r}" if section else "the top level"
        raise ConfigError(f"{source}: expected a mapping of settings at {what}, got {type(mapping).__name__} "
                          f"{mapping!r}")
    hints = typing.get_type_hints(cls)
    valid = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in exclude}
    values = {}
    for key, value in mapping.items():
        if key not in valid:
            raise ConfigError(unknown_key_message(key, valid, source, section))
        try:
            values[key] = convert(value, hints[key])
        except (TypeError, ValueError):
            name = f"{section}.{key}" if section else key
            raise ConfigError(f"{source}: {name} must be {describe(hints[key])}, got {value!r}") from None
    return values


def from_mapping(cls, mapping, source: str, section: str):
    """`cls(**mapping)` with every key checked and every value converted to its field's type.

    Errors name the file (`source`), the section, the key, and the closest valid key for a typo;
    a value the dataclass itself refuses (its __post_init__ ValueError) is reported the same way.
    """
    values = check_mapping(cls, mapping, source, section)
    try:
        return cls(**values)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None


def to_plain(value):
    """A dataclass (or nested values) as YAML-safe builtins: tuples become lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


# ---- conversion by annotation -------------------------------------------------------------------

def _options(hint) -> tuple:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return (hint,)


def describe(hint) -> str:
    """The type a key wants, in words: 'an integer', 'a number or null', "one of 'soft', 'hard'"."""
    words = []
    for option in _options(hint):
        if option is type(None):
            words.append("null")
        elif typing.get_origin(option) is typing.Literal:
            words.append("one of " + ", ".join(repr(a) for a in typing.get_args(option)))
        elif option is bool:
            words.append("true or false")
        elif option is int:
            words.append("an integer")
        elif option is float:
            words.append("a number")
        elif option is str:
            words.append("a string")
        elif option is dict or typing.get_origin(option) is dict:
            words.append("a mapping")
        elif typing.get_origin(option) in (tuple, list):
            words.append(f"a list of {len(typing.get_args(option))} numbers" if typing.get_origin(option) is tuple
                         else "a list")
        else:
            words.append(getattr(option, "__name__", str(option)))
    return " or ".join(words)


def convert(value, hint):
    """`value` as the annotation `hint` wants it; TypeError/ValueError when it cannot be."""
    options = _options(hint)
    # Exact matches first (so `bool | str` keeps True as a bool and "auto" as a string).
    for option in options:
        if _is_exactly(value, option):
            return tuple(value) if typing.get_origin(option) is tuple else value
    for option in options:
        try:
            return _coerce(value, option)
        except (TypeError, ValueError):
            continue
    raise TypeError(f"{value!r} is not {describe(hint)}")


def _is_exactly(value, option) -> bool:
    if option is type(None):
        return value is None
    if typing.get_origin(option) is typing.Literal:
        return value in typing.get_args(option)
    if option is bool:
        return isinstance(value, bool)
    if option is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if option is float:
        return isinstance(value, float)
    if option is str:
        return isinstance(value, str)
    if option is dict or typing.get_origin(option) is dict:
        return isinstance(value, dict)
    if typing.get_origin(option) is tuple:
        args = typing.get_args(option)
        return isinstance(value, (list, tuple)) and len(value) == len(args) and all(
            _is_exactly(v, a) for v, a in zip(value, args))
    return False


def _coerce(value, option):
    if isinstance(value, bool) and option is not bool:
        raise TypeError("a boolean is not a number or a string here")
    if option is float and isinstance(value, (int, str)):
        # YAML reads 1e-4 (no dot) as a string: accept any spelling of a number.
        return float(value)
    if option is int and isinstance(value, (float, str)):
        number = float(value)
        if number != int(number):
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(option)
        if len(value) != len(args):
            raise ValueError(f"expected {len(args)} values")
        return tuple(convert(v, a) for v, a in zip(value, args))
    raise TypeError(f"{value!r} is not {describe(option)}")
