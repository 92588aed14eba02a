"""Every field of a Lago body is honored or refused by name; nothing is dropped silently.

A field is checked against two lists at each level of a body:
- the fields Lago defines there (`lago_fields.json`, from Lago's OpenAPI file), and
- the fields Meterhouse implements there: those of the pydantic models in `models.py` (plus, for
  the free-form objects the models keep as dicts, `DICT_FIELDS`).

A field Meterhouse implements is read by the model. A field Lago defines that Meterhouse does not
implement is refused as "not supported yet". Any other field is unknown: refused, with the nearest
known name. The implemented fields Lago does not define are Meterhouse's batch extensions (a
`created_at` that dates a body, `billable_metric_code`, ...), listed by `extensions()`. A value of
an enumerated field that Lago accepts and Meterhouse does not implement (a `dynamic` charge model)
is refused as not supported yet too.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel

from dagster_project.catalog.lago_fields import lago_fields

_RANGE = {"from_value": None, "to_value": None, "flat_amount": None}
# Charge properties Meterhouse prices (the models keep them as a dict; `reader.property_problems`
# checks their values).
CHARGE_PROPERTIES = {
    "amount": None, "package_size": None, "free_units": None, "rate": None, "fixed_amount": None,
    "free_units_per_events": None, "free_units_per_total_aggregation": None,
    "per_transaction_min_amount": None, "per_transaction_max_amount": None,
    "graduated_ranges": {**_RANGE, "per_unit_amount": None},
    "volume_ranges": {**_RANGE, "per_unit_amount": None},
    "graduated_percentage_ranges": {**_RANGE, "rate": None},
    "pricing_group_keys": None,
}
# (model name, field) -> the subfields implemented in a field the model keeps as a dict
DICT_FIELDS: dict[tuple[str, str], dict] = {
    ("Charge", "properties"): CHARGE_PROPERTIES,
    ("ChargeFilter", "properties"): CHARGE_PROPERTIES,
    ("Plan", "minimum_commitment"): {"amount_cents": None},
    ("ChargeOverride", "properties"): CHARGE_PROPERTIES,
    ("PlanOverrides", "minimum_commitment"): {"amount_cents": None},
}


def _model_in(annotation) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`X`, `X | None`, `list[X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _literal_values(annotation) -> set | None:
    """The values a `Literal[...]` (or `Literal[...] | None`) annotation accepts; None otherwise."""
    if typing.get_origin(annotation) is Literal:
        return set(typing.get_args(annotation))
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            if (values := _literal_values(arg)) is not None:
                return values
    return None


@functools.cache
def implemented(model: type[BaseModel]) -> dict:
    """The tree of fields a model implements: name -> subtree (an object or a list of objects),
    or None (a leaf)."""
    tree: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        sub = _model_in(info.annotation)
        tree[name] = implemented(sub) if sub is not None else DICT_FIELDS.get((model.__name__, name))
    return tree


@functools.cache
def _enum_values(model: type[BaseModel]) -> dict[str, set]:
    return {name: values for name, info in model.model_fields.items()
            if (values := _literal_values(info.annotation)) is not None}


def field_problems(kind: str, model: type[BaseModel], body: Any) -> list[str]:
    """`path: message` for each field of `body` (a `{kind: body}`'s inner object) that is unknown
    or not supported yet."""
    if not isinstance(body, dict):
        return []
    return _walk(body, lago_fields()["fields"].get(kind) or {}, implemented(model), model, kind, "")


def _walk(body: dict, lago: dict, ours: dict, model: type[BaseModel] | None, schema_path: str, path: str) -> list[str]:
    problems = []
    enums = lago_fields()["enums"]
    for key, value in body.items():
        at = f"{path}{key}"
        if key in ours:
            sub_model = _model_in(model.model_fields[key].annotation) if model and key in model.model_fields else None
            lago_values = enums.get(f"{schema_path}.{key}")
            our_values = _enum_values(model).get(key) if model else None
            if lago_values and our_values is not None and value in lago_values and value not in our_values:
                problems.append(f"{at}: Lago's {key} {value!r} is not supported yet by Meterhouse")
            if ours[key] is not None:
                problems += _nested(value, (lago.get(key) or {}), ours[key], sub_model, f"{schema_path}.{key}", at)
        elif key in lago:
            problems.append(f"{at}: Lago's field {key!r} is not supported yet by Meterhouse")
        else:
            known = sorted(set(lago) | set(ours))
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known fields here: {', '.join(known)})"
            problems.append(f"{at}: unknown field {key!r}{hint}")
    return problems


def _nested(value, lago: dict, ours: dict, model, schema_path: str, path: str) -> list[str]:
    """An object field, or a list of objects (each checked with its index in the path)."""
    if isinstance(value, dict):
        return _walk(value, lago, ours, model, schema_path, f"{path}.")
    if isinstance(value, list):
        return [p for i, item in enumerate(value) if isinstance(item, dict)
                for p in _walk(item, lago, ours, model, schema_path, f"{path}.{i}.")]
    return []


def extensions(kind: str, model: type[BaseModel]) -> list[str]:
    """The fields Meterhouse reads on a body that Lago's schema does not define (dotted paths)."""
    def walk(ours: dict, lago: dict, prefix: str) -> list[str]:
        found = []
        for key, sub in ours.items():
            if key not in lago:
                found.append(prefix + key)
            elif sub is not None:
                found += walk(sub, lago.get(key) or {}, f"{prefix}{key}.")
        return found

    return walk(implemented(model), lago_fields()["fields"].get(kind) or {}, "")


def not_supported(kind: str, model: type[BaseModel]) -> list[str]:
    """The fields Lago defines on a body that Meterhouse refuses (dotted paths)."""
    def walk(lago: dict, ours: dict, prefix: str) -> list[str]:
        found = []
        for key, sub in lago.items():
            if key not in ours:
                found.append(prefix + key)
            elif sub is not None and ours[key] is not None:
                found += walk(sub, ours[key], f"{prefix}{key}.")
        return found

    return walk(lago_fields()["fields"].get(kind) or {}, implemented(model), "")
