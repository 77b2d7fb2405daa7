"""Typed readers for the fields of a Runware task object: each failure names the parameter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openimagine.errors import InvalidInput
from openimagine.models.rules import check_text, invalid, missing

_MISSING: Any = object()


def get_str(
    obj: Mapping[str, Any], key: str, parameter: str | None = None, *, required: bool = False
) -> str | None:
    """A string field, or None when absent (error when required); a NUL or an unpaired
    surrogate is refused here for every string field, so none reaches a store."""
    name = parameter or key
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(name, f"Invalid value for {name}: expected a string.", type="string")
    return check_text(name, value)


def get_int(
    obj: Mapping[str, Any],
    key: str,
    parameter: str | None = None,
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> int | None:
    """An integer field (an integral float such as 6.0 is accepted), range-checked."""
    name = parameter or key
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        return None
    # bool is an int in Python but not in JSON's eyes.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(name, f"Invalid value for {name}: expected an integer.", type="integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise invalid(
                name, f"Invalid value for {name}: expected an integer, got {value}.", type="integer"
            )
        value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = _bounds_text(lo, hi)
        raise invalid(
            name,
            f"Invalid value for {name}: {value} is out of range ({bounds}).",
            type="integer",
            min=lo,
            max=hi,
        )
    return value


def _bounds_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f"at least {lo}" if lo is not None else f"at most {hi}"


def get_bool(obj: Mapping[str, Any], key: str, parameter: str | None = None) -> bool | None:
    """A boolean field."""
    name = parameter or key
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(name, f"Invalid value for {name}: expected true or false.", type="boolean")
    return value


def get_choice(
    obj: Mapping[str, Any], key: str, allowed: Sequence[str], parameter: str | None = None
) -> str | None:
    """A string field restricted to `allowed` values."""
    name = parameter or key
    value = get_str(obj, key, name)
    if value is None:
        return None
    if value not in allowed:
        raise invalid(
            name,
            f"Invalid value for {name}: {value!r}. Allowed values: {', '.join(allowed)}.",
            allowedValues=list(allowed),
        )
    return value


def get_object(obj: Mapping[str, Any], key: str, parameter: str | None = None) -> dict[str, Any]:
    """An object field ({} when absent)."""
    name = parameter or key
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, f"Invalid value for {name}: expected an object.", type="object")
    return value


def get_list(obj: Mapping[str, Any], key: str, parameter: str | None = None) -> list[Any] | None:
    """An array field, or None when absent."""
    name = parameter or key
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, list):
        raise invalid(name, f"Invalid value for {name}: expected an array.", type="array")
    return value


def reject_unknown(obj: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    """Error naming the first field the model does not support."""
    for key in obj:
        if key not in allowed:
            name = f"{prefix}{key}"
            raise InvalidInput(
                f"Unsupported parameter: {name} is not accepted by this model.",
                code="unsupportedParameter",
                parameter=name,
            )
