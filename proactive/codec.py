"""msrest-exact JSON for botbuilder schema models, without msrest's per-call cost.

`dump(model)` returns the dict the SDK's ConnectorClient puts on the wire for a model and
`load(cls, data)` returns what `cls.deserialize(data)` returns. Both are driven by each model
class's `_attribute_map`, precompiled once per class into a flat plan, so a call is a tight loop
instead of msrest's generic, reflective walk (the walk costs ~1-2 ms per activity; see
`bench/codec.py`).

Odd values (a dict where a model is declared, a tuple where a list is declared, a string where a
datetime is declared, ...) are rare, so for those the codec calls msrest's own helpers and gets
msrest's answer, or error, by construction. Behaviour msrest shows on that path that is worth
knowing (and that tests/unit/test_codec.py pins):

- No botbuilder model declares `additional_properties` in its `_attribute_map`, so unknown keys
  survive a `load` (in `model.additional_properties`, on every model) but never reach the wire.
  An incoming mention loaded as `Entity` keeps `mentioned`/`text` only there: sent back, it is
  `{"type": "mention"}`. Send `Mention` objects instead.
- Datetimes are sent in UTC as `YYYY-MM-DDTHH:MM:SS.fffZ`: microseconds with trailing zeros
  stripped but at least three digits; a naive datetime counts as UTC (msrest also logs a warning
  per value, the codec does not). So `localTimestamp` loses its offset on the wire.
- `str` fields send an enum member's `.value`, and so any object with a `.value` attribute;
  `int`/`bool`/`float` fields coerce with `int()`/`bool()`/`float()` (`bool("false")` is True).
- `object` fields (`value`, `channelData`, attachment `content`) dispatch on exact types: tuples,
  sets, datetime subclasses and custom objects become `str(x)`; a botbuilder enum member inside
  one fails; a nested value that fails becomes `null` inside a dict, and is dropped from a list.

No botbuilder model uses key flattening (`"a.b"` keys), `_validation` (readonly, required, ...),
polymorphic `_subtype_map` or XML; the codec raises NotImplementedError for a model that does,
rather than guess. `MessagingExtensionResponse.cache_info` declares a class where msrest expects
a type string: ConnectorClient cannot send that model at all (its validation fails on it),
`serialize()` only with `cache_info` unset, and `dump` does what `serialize()` does. Neither msrest
nor `load` can load it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, TypeVar

import isodate
from azure.core.exceptions import DeserializationError, SerializationError
from msrest.exceptions import ValidationError
from msrest.serialization import (
    Deserializer,
    Model,
    Serializer,
    attribute_key_case_insensitive_extractor,
    last_rest_key_case_insensitive_extractor,
    rest_key_case_insensitive_extractor,
)

__all__ = ["dump", "load"]

M = TypeVar("M", bound=Model)
_Conv = Callable[[Any], Any]

# msrest splits attribute-map keys on dots that are not escaped as "\.".
_FLATTEN: Final = re.compile(r"(?<!\\)\.")


# --- shared msrest pieces ---------------------------------------------------------------------


@functools.cache
def _wire_models() -> dict[str, type]:
    """The namespace ConnectorClient builds its Serializer from (schema and Teams models)."""
    from botframework.connector import models

    return {name: value for name, value in vars(models).items() if isinstance(value, type)}


@functools.cache
def _wire_serializer() -> Any:
    return Serializer(_wire_models())


@functools.cache
def _wire_deserializer() -> Any:
    """The Deserializer `Serializer.body` builds to turn a request body into models first."""
    deserializer = Deserializer(_wire_models())
    deserializer.additional_properties_detection = False
    deserializer.key_extractors = [
        rest_key_case_insensitive_extractor,
        attribute_key_case_insensitive_extractor,
        last_rest_key_case_insensitive_extractor,
    ]
    return deserializer


@functools.cache
def _wire_non_models() -> frozenset[type]:
    """Classes msrest would try, and fail, to serialise as models inside an `object` field."""
    return frozenset(t for t in _wire_models().values() if not issubclass(t, Model))


@functools.cache
def _plain_deserializer() -> Any:
    return Deserializer()


def _class_models(cls: type) -> dict[str, type]:
    """The namespace `cls.deserialize` resolves type names in: every class of the package
    that holds the model's module (`botbuilder.schema.teams` for a Teams model), or just the
    model when that package does not export it. What msrest's Model does, rebuilt from public
    facts so the codec calls no private msrest method."""
    package = sys.modules.get(cls.__module__.rsplit(".", 1)[0])
    models = {k: v for k, v in vars(package).items() if isinstance(v, type)} if package else {}
    return models if cls.__name__ in models else {cls.__name__: cls}


def _validate_container(name: str, data_type: str, value: Any) -> None:
    """What body()'s validation does with a value in a `[..]` or `{..}` field: a list is
    iterated, a dict must have `.values()`, a model inside is validated (`Model.validate()`,
    msrest's public API); the first problem is raised as msrest's ValidationError. msrest's
    own walk is private (`_recursive_validate`), so this is the same walk, done here."""
    if data_type.startswith("[") and value is not None:
        for item in value:
            _validate_container(name + " content", data_type[1:-1], item)
    elif data_type.startswith("{") and value is not None:
        if not hasattr(value, "values"):
            raise ValidationError("type", name, data_type)
        for item in value.values():
            _validate_container(name + " content", data_type[1:-1], item)
    elif isinstance(value, Model):
        errors = value.validate()
        if errors:
            raise errors[0]


def _check_supported(cls: type) -> None:
    problems = []
    if getattr(cls, "_validation", None):
        problems.append("_validation")
    if cls.__dict__.get("_subtype_map"):
        problems.append("_subtype_map")
    if hasattr(cls, "_xml_map"):
        problems.append("XML")
    problems += [
        f"flattened key {desc['key']!r}"
        for desc in cls._attribute_map.values()  # type: ignore[attr-defined]
        if len(_FLATTEN.split(desc["key"])) > 1
    ]
    if problems:
        raise NotImplementedError(f"{cls.__name__} uses {', '.join(problems)}: not supported")


def _key(desc: Mapping[str, Any]) -> str:
    key: str = desc["key"]
    return key.replace("\\.", ".")


def _unicode(value: Any) -> Any:
    """`Serializer.serialize_unicode`: an enum's (or anything's) `.value`, else `str()`."""
    try:
        return value.value
    except AttributeError:
        return str(value)


# --- dump ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DumpPlan:
    size: int  # len(_attribute_map) when built: enable_additional_properties_sending() grows it
    fields: tuple[tuple[str, str, _Conv], ...]  # (attribute, JSON key, converter)
    first_wins: bool  # additional_properties merged or duplicate keys: msrest keeps the first
    unvalidatable: bool  # validated, but declares a non-string type: msrest always fails


# How much of `Serializer.body` applies below a point of the model tree: msrest walks the tree
# three times. RAW: only `_serialize` (models inside dicts and lists of an `object` field, and
# everything under `model.serialize()`). VALIDATED: `_recursive_validate` first, which follows
# declared types (and a model held directly by an `object` field). REBUILT: before that, the
# Deserializer rebuild, which follows declared types naming a connector model or enum.
_RAW: Final = 0
_VALIDATED: Final = 1
_REBUILT: Final = 2

# Plans are derived from class attributes that do not change, so caching them for the life of
# the process is safe; they are built lazily, on the first dump of each class.
_DUMP_PLANS: dict[tuple[type, int], _DumpPlan] = {}
_ROOT_MODES: dict[type, int] = {}


def dump(model: Model) -> dict[str, Any]:
    """Serialise a model to the JSON dict botbuilder's ConnectorClient sends for it.

    The wire form is `Serializer(connector models).body(model, type(model).__name__)`, which is
    what `send_to_conversation`, `reply_to_activity` and `update_activity` post. For models that
    hold models where models are declared it equals `model.serialize()` (same keys, order and
    values). Where the two differ, this matches the wire, because the wire is what the connector
    service sees:

    - `body` first rebuilds the model tree with msrest's Deserializer: a dict where a model is
      declared becomes that model (keys matched case-insensitively, unknown keys dropped, values
      coerced), where `serialize()` raises; a tuple or a string where a list or a model is
      declared fails, where `serialize()` passes it through. `body` does this in place, mutating
      the caller's activity; `dump` never mutates its argument.
    - `body` then validates the tree, which fails on an enum member where a dict is declared
      (`serialize()` sends the member's value); `dump` fails too.
    - Two corners of `body` are not reproduced: a generator in a `[str]` field (body's validation
      consumes it and sends `[]`), and a nested model missing one of its attributes (body's
      rebuild silently drops that model; `dump` raises).

    Raises SerializationError where msrest raises (msrest sometimes raises ValueError, TypeError
    or ValidationError instead).
    """
    cls: type = type(model)
    mode = _ROOT_MODES.get(cls)
    if mode is None:
        if _declares_non_string_type(cls):
            mode = _RAW  # body() always fails on these: do what serialize() does
        else:
            mode = _REBUILT if cls.__name__ in _wire_models() else _VALIDATED
        _ROOT_MODES[cls] = mode
    return _dump_model(model, mode)


def _dump_model(obj: Any, mode: int) -> dict[str, Any]:
    """`Serializer._serialize` of one model, below which `mode` of body()'s walks apply."""
    cls = type(obj)
    plan = _DUMP_PLANS.get((cls, mode))
    if plan is None or plan.size != len(cls._attribute_map):
        plan = _DUMP_PLANS[cls, mode] = _build_dump_plan(cls, mode)
    out: dict[str, Any] = {}
    attr = ""
    try:
        if plan.unvalidatable:
            raise SerializationError(
                f"{cls.__name__} declares a type that is not a string: msrest cannot validate it"
            )
        if plan.first_wins:
            _dump_first_wins(obj, plan, out)
        else:
            for attr, key, conv in plan.fields:
                value = getattr(obj, attr)
                if value is not None:
                    out[key] = conv(value)
    except SerializationError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise SerializationError(
            f"Attribute {attr} in object {cls.__name__} cannot be serialized: {exc!r}"
        ) from exc
    return out


def _dump_first_wins(obj: Any, plan: _DumpPlan, out: dict[str, Any]) -> None:
    for attr, key, conv in plan.fields:
        if conv is _merge:  # additional_properties with key "": merged where it stands
            extra = getattr(obj, attr)
            if extra is not None:
                out.update(extra)
            continue
        value = getattr(obj, attr)
        if value is not None:
            converted = conv(value)
            if key not in out:
                out[key] = converted


def _merge(value: Any) -> Any:
    """Marks additional_properties with key "" in a plan; never called."""
    raise AssertionError("not a converter")


def _declares_non_string_type(cls: type) -> bool:
    attribute_map: dict[str, dict[str, Any]] = cls._attribute_map  # type: ignore[attr-defined]
    return any(not isinstance(desc["type"], str) for desc in attribute_map.values())


def _build_dump_plan(cls: type, mode: int) -> _DumpPlan:
    _check_supported(cls)
    attribute_map: dict[str, dict[str, Any]] = cls._attribute_map  # type: ignore[attr-defined]
    fields: list[tuple[str, str, _Conv]] = []
    seen: set[str] = set()
    first_wins = False
    for attr, desc in attribute_map.items():
        if attr == "additional_properties" and desc["key"] == "":
            fields.append((attr, "", _merge))
            first_wins = True
            continue
        key = _key(desc)
        first_wins = first_wins or key in seen
        seen.add(key)
        fields.append((attr, key, _dump_conv(desc["type"], mode)))
    unvalidatable = mode != _RAW and _declares_non_string_type(cls)
    return _DumpPlan(len(attribute_map), tuple(fields), first_wins, unvalidatable)


def _dump_conv(data_type: object, mode: int) -> _Conv:
    """The converter for one declared msrest type; never called with None."""
    if not isinstance(data_type, str):
        return functools.partial(_fail_type, data_type)
    if data_type == "object" and mode != _RAW:
        return _ser_obj_validated
    simple = _DUMP_SIMPLE.get(data_type)
    if simple is not None:
        return simple
    wire = _wire_models()
    # body() rebuilds a field only if the innermost declared type is a known model or enum.
    rebuild_here = mode == _REBUILT and data_type.strip("[]{}") in wire
    if len(data_type) > 1 and data_type[0] + data_type[-1] in ("[]", "{}"):
        inner = _dump_conv(data_type[1:-1], mode)
        if rebuild_here:
            return _rebuilt_list(inner) if data_type[0] == "[" else _rebuilt_dict(inner)
        validate = data_type if mode != _RAW else ""
        return (_raw_list if data_type[0] == "[" else _raw_dict)(inner, validate)
    target = wire.get(data_type)
    if isinstance(target, type) and issubclass(target, Enum):
        return _rebuilt_enum(target) if rebuild_here else _raw_enum(target)
    if rebuild_here and isinstance(target, type) and issubclass(target, Model):
        return _rebuilt_model(data_type)
    return _raw_model(data_type, min(mode, _VALIDATED))


def _fail_type(data_type: object, value: Any) -> Any:
    raise SerializationError(f"Unable to serialize value: {value!r} as type: {data_type!r}.")


def _ser_str(value: Any) -> Any:
    return value if type(value) is str else _unicode(value)


def _ser_iso(value: Any) -> Any:
    """`Serializer.serialize_iso`; exact datetimes take the fast path."""
    if type(value) is not dt.datetime:
        return Serializer.serialize_iso(value)
    try:
        utc = value.utctimetuple()
    except (OverflowError, ValueError) as exc:
        raise SerializationError(f"Unable to serialize datetime object: {exc!r}") from exc
    if utc.tm_year > 9999 or utc.tm_year < 1:
        raise SerializationError("Unable to serialize datetime object: hit max or min date")
    micro = value.microsecond
    fraction = f".{micro:06d}".rstrip("0").ljust(4, "0") if micro else ".000"
    return (
        f"{utc.tm_year:04d}-{utc.tm_mon:02d}-{utc.tm_mday:02d}"
        f"T{utc.tm_hour:02d}:{utc.tm_min:02d}:{utc.tm_sec:02d}{fraction}Z"
    )


def _ser_obj_validated(value: Any) -> Any:
    """An `object` field that body() validates: a model held directly is validated too."""
    if isinstance(value, Model):
        return _dump_model(value, _VALIDATED)
    return _ser_obj(value)


def _ser_obj(value: Any) -> Any:
    """`Serializer.serialize_object`, for a value that is not None."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                key = _unicode(key)
            if type(item) in _SCALARS:
                out[key] = item
                continue
            try:
                out[key] = _ser_obj(item)
            except ValueError:  # msrest swallows failures (SerializationError too) here
                out[key] = None
        return out
    if kind is list:
        items: list[Any] = []
        for item in value:
            if type(item) in _SCALARS:
                items.append(item)
                continue
            try:
                converted = _ser_obj(item)
            except ValueError:  # ... and drops the item here
                continue
            items.append(converted)
        return items
    return _ser_obj_other(value)


# JSON scalars msrest passes through unchanged, in `object` fields both ways.
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _ser_obj_other(value: Any) -> Any:
    if isinstance(value, ET.Element):
        return value
    kind = type(value)
    if kind is dt.datetime:
        return _ser_iso(value)
    if kind is dt.date:
        return Serializer.serialize_date(value)
    if kind is dt.time:
        return Serializer.serialize_time(value)
    if kind is dt.timedelta:
        return Serializer.serialize_duration(value)
    if kind is decimal.Decimal:
        return Serializer.serialize_decimal(value)
    if isinstance(value, Model):
        return _dump_model(value, _RAW)
    if kind in _wire_non_models():
        # msrest tries these as models and fails on `is_xml_model` (an AttributeError, which
        # the enclosing dict or list does not swallow).
        raise AttributeError(f"{kind.__name__} has no attribute 'is_xml_model'")
    return str(value)


def _enum_for_container(value: Any, validate: str) -> Any:
    """`serialize_data` sends an enum member's value even where a list or dict is declared;
    body()'s validation may object first (it iterates lists and wants `.values()` of dicts)."""
    if validate:
        _validate_container(validate, validate, value)
    return Serializer.serialize_enum(value, enum_obj=type(value))


def _raw_list(inner: _Conv, validate: str) -> _Conv:
    """`Serializer.serialize_iter` (reached through `serialize_data`)."""

    def conv(value: Any) -> Any:
        if type(value) is not list:
            if isinstance(value, Enum):
                return _enum_for_container(value, validate)
            if isinstance(value, str):
                raise SerializationError("Refuse str type as a valid iter type.")
        return [None if item is None else inner(item) for item in value]

    return conv


def _raw_dict(inner: _Conv, validate: str) -> _Conv:
    """`Serializer.serialize_dict` (reached through `serialize_data`)."""

    def conv(value: Any) -> Any:
        if isinstance(value, Enum):
            return _enum_for_container(value, validate)
        return {
            key if type(key) is str else _unicode(key): None if item is None else inner(item)
            for key, item in value.items()
        }

    return conv


def _raw_enum(enum: type[Enum]) -> _Conv:
    return functools.partial(_serialize_enum, enum)


def _serialize_enum(enum: type[Enum], value: Any) -> Any:
    return Serializer.serialize_enum(value, enum_obj=enum)


def _raw_model(data_type: str, mode: int) -> _Conv:
    """A declared model (or unknown) type where body() does not rebuild: msrest's own path."""

    def conv(value: Any) -> Any:
        if isinstance(value, Model):
            return _dump_model(value, mode)
        return _wire_serializer().serialize_data(value, data_type, is_xml=False)

    return conv


def _rebuild(data_type: str, value: Any) -> Any:
    """What body()'s Deserializer makes of a non-model value declared as a model or enum."""
    try:
        return _wire_deserializer().deserialize_data(value, data_type)
    except DeserializationError as exc:
        raise SerializationError(f"Unable to build a model: {exc}") from exc


def _rebuilt_model(data_type: str) -> _Conv:
    def conv(value: Any) -> Any:
        if not isinstance(value, Model):
            value = _rebuild(data_type, value)
            if not isinstance(value, Model):
                raise SerializationError(f"Unable to build a model: {data_type}")
        return _dump_model(value, _REBUILT)

    return conv


def _rebuilt_enum(enum: type[Enum]) -> _Conv:
    def conv(value: Any) -> Any:
        return Serializer.serialize_enum(Deserializer.deserialize_enum(value, enum), enum_obj=enum)

    return conv


def _rebuilt_list(inner: _Conv) -> _Conv:
    def conv(value: Any) -> Any:
        if not isinstance(value, (list, set)):
            raise SerializationError(
                f"Unable to build a model: cannot deserialize {type(value).__name__} as a list"
            )
        return [None if item is None else inner(item) for item in value]

    return conv


def _rebuilt_dict(inner: _Conv) -> _Conv:
    def conv(value: Any) -> Any:
        pairs = (
            [(pair["key"], pair["value"]) for pair in value]
            if isinstance(value, list)
            else value.items()
        )
        return {
            key if type(key) is str else _unicode(key): None if item is None else inner(item)
            for key, item in pairs
        }

    return conv


_DUMP_SIMPLE: Final[dict[str, _Conv]] = {
    "str": _ser_str,
    "int": int,
    "bool": bool,
    "float": float,
    "long": int,
    "object": _ser_obj,
    "iso-8601": _ser_iso,
    "rfc-1123": Serializer.serialize_rfc,
    "unix-time": Serializer.serialize_unix,
    "duration": Serializer.serialize_duration,
    "date": Serializer.serialize_date,
    "time": Serializer.serialize_time,
    "decimal": Serializer.serialize_decimal,
    "bytearray": Serializer.serialize_bytearray,
    "base64": Serializer.serialize_base64,
}


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LoadPlan:
    size: int
    fields: tuple[tuple[str, str, _Conv], ...]  # (attribute, JSON key, converter)
    attrs: tuple[str, ...]  # every attribute passed to the constructor
    # key -> (attribute, converter, the JSON type it takes as is); None if not one-to-one
    by_key: dict[str, tuple[str, _Conv, type | None]] | None
    known: frozenset[str]  # keys that are not additional properties
    extras: bool  # whether unknown keys are collected into additional_properties
    broken: str  # why msrest cannot load this class at all, or ""


@dataclass(slots=True)
class _LoadContext:
    """What `root.deserialize` resolves type names against, and plans built against it."""

    deserializer: Any
    models: dict[str, type]
    fast: bool  # False: the root class needs a feature only msrest handles
    plans: dict[type, _LoadPlan] = field(default_factory=dict)


# Like _DUMP_PLANS: derived from class attributes, built lazily, valid for the process.
_LOAD_CONTEXTS: dict[type, _LoadContext] = {}


def load(cls: type[M], data: Mapping[str, Any]) -> M:
    """Build a model from its JSON dict exactly as `cls.deserialize(data)` does.

    Every attribute, recursively, equals msrest's: the model's own constructor is called, keys
    are matched case-sensitively, values coerced the same way (a number in a `str` field becomes
    a string, `object` fields are copied), datetimes parsed by msrest's own parser, and keys the
    model does not declare land in `additional_properties` (the same objects, not copies).
    Type names resolve against the root class's module, as in msrest: several Teams models name
    schema models their module does not export, and fail to load when those keys are present.

    Raises DeserializationError where msrest raises.
    """
    context = _LOAD_CONTEXTS.get(cls)
    if context is None:
        models = _class_models(cls)
        context = _LOAD_CONTEXTS[cls] = _LoadContext(Deserializer(models), models, _loadable(cls))
    if not context.fast or (type(data) is not dict and not isinstance(data, Mapping)):
        result: M = context.deserializer(cls.__name__, data)
        return result
    return _load_model(context, cls, data)  # type: ignore[no-any-return]


def _loadable(cls: type) -> bool:
    try:
        _check_supported(cls)
    except NotImplementedError:
        return False
    return True


def _load_model(context: _LoadContext, cls: type, data: Mapping[str, Any]) -> Any:
    """`Deserializer._deserialize` of one model from a mapping."""
    plan = context.plans.get(cls)
    if plan is None or plan.size != len(cls._attribute_map):  # type: ignore[attr-defined]
        plan = context.plans[cls] = _build_load_plan(context, cls)
    if plan.broken:
        raise DeserializationError(f"Unable to deserialize to object: {plan.broken}")
    by_key = plan.by_key
    key = ""
    try:
        if by_key is None:
            kwargs, extra = _load_fields(plan, data)
        else:  # walk the keys present rather than every declared attribute
            kwargs = dict.fromkeys(plan.attrs)
            extra = {}
            for key, value in data.items():
                entry = by_key.get(key)
                if entry is None:
                    extra[key] = value
                elif value is not None:
                    attr, conv, exact = entry
                    kwargs[attr] = value if type(value) is exact else conv(value)
        obj = cls(**kwargs)
    except DeserializationError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DeserializationError(
            f"Unable to deserialize to object: {cls.__name__} ({key}): {exc!r}"
        ) from exc
    if extra and plan.extras:
        obj.additional_properties = extra
    return obj


def _load_fields(plan: _LoadPlan, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """msrest's own order, for the odd plan whose keys are not one-to-one with attributes."""
    get = data.get
    kwargs: dict[str, Any] = {}
    for attr, key, conv in plan.fields:
        value = get(key)
        kwargs[attr] = None if value is None else conv(value)
    known = plan.known
    return kwargs, {key: data[key] for key in data if key not in known}


def _build_load_plan(context: _LoadContext, cls: type) -> _LoadPlan:
    _check_supported(cls)
    attribute_map: dict[str, dict[str, Any]] = cls._attribute_map  # type: ignore[attr-defined]
    fields: list[tuple[str, str, _Conv]] = []
    broken = ""
    for attr, desc in attribute_map.items():
        if attr == "additional_properties" and desc["key"] == "":
            continue
        if not isinstance(desc["type"], str):
            broken = f"{cls.__name__}.{attr} declares type {desc['type']!r}"
            continue
        fields.append((attr, _key(desc), _load_conv(context, desc["type"])))
    extras_desc = attribute_map.get("additional_properties")
    keys = [key for _, key, _ in fields]
    one_to_one = len(set(keys)) == len(keys) and "" not in keys
    return _LoadPlan(
        size=len(attribute_map),
        fields=tuple(fields),
        attrs=tuple(attr for attr, _, _ in fields),
        by_key={
            key: (attr, conv, _LOAD_FAST.get(attribute_map[attr]["type"]))
            for attr, key, conv in fields
        }
        if one_to_one
        else None,
        known=frozenset(_key(desc) for desc in attribute_map.values() if desc["key"] != ""),
        extras=extras_desc is None or extras_desc["key"] == "",
        broken=broken,
    )


def _load_conv(context: _LoadContext, data_type: str) -> _Conv:
    """The converter for one declared type; exact JSON types take a fast path, others msrest's."""
    slow = functools.partial(context.deserializer.deserialize_data, data_type=data_type)
    fast = _LOAD_FAST.get(data_type)
    if fast is not None:
        return functools.partial(_load_exact, fast, slow)
    if data_type == "object":
        return _de_obj
    if data_type == "iso-8601":
        return functools.partial(_de_iso, slow)
    if data_type in _DUMP_SIMPLE:  # the other msrest formats: rare, leave them to msrest
        return slow
    if len(data_type) > 1 and data_type[0] + data_type[-1] in ("[]", "{}"):
        inner = _load_conv(context, data_type[1:-1])
        if data_type[0] == "[":
            return functools.partial(_de_list, inner, slow)
        return functools.partial(_de_dict, inner, slow)
    target = context.models.get(data_type)
    if isinstance(target, type) and issubclass(target, Model) and _loadable(target):
        return functools.partial(_de_model, context, target, slow)
    return slow  # enums, names msrest cannot resolve (it raises), exotic models


def _load_exact(kind: type, slow: _Conv, value: Any) -> Any:
    return value if type(value) is kind else slow(value)


_LOAD_FAST: Final[dict[str, type]] = {"str": str, "int": int, "float": float, "bool": bool}


def _de_iso(slow: _Conv, value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if type(value) is str:
        match = _ISO_COMMON.match(value)
        if match is None:
            return Deserializer.deserialize_iso(value)
        return _iso_common(match)
    return slow(value)


# The forms the Bot Connector and dump() write: what msrest (which hands them to isodate after
# cutting the fraction to six digits) parses to datetime(..., microsecond=int(fraction padded to
# six digits), tzinfo=isodate's UTC or FixedOffset(hours, minutes, "+hh:mm")). Anything else,
# and anything datetime() rejects, goes to msrest's own parser.
_ISO_COMMON: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.(\d+))?"
    r"(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)\Z",
    re.ASCII,  # isodate reads only ASCII digits
)


def _iso_common(match: re.Match[str]) -> dt.datetime:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone == "Z":
        tzinfo = isodate.UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        tzinfo = isodate.FixedOffset(sign * int(zone[1:3]), sign * int(zone[4:6]), zone)
    try:
        parsed = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
            tzinfo,
        )
        if zone != "Z" and not 1 <= parsed.utctimetuple().tm_year <= 9999:
            raise OverflowError("msrest rejects a year that leaves 1..9999 in UTC")
    except (OverflowError, ValueError):
        return Deserializer.deserialize_iso(match.string)  # type: ignore[no-any-return]
    return parsed


def _de_list(inner: _Conv, slow: _Conv, value: Any) -> Any:
    if type(value) is not list:
        return slow(value)
    return [None if item is None else inner(item) for item in value]


def _de_dict(inner: _Conv, slow: _Conv, value: Any) -> Any:
    if type(value) is not dict:
        return slow(value)
    return {key: None if item is None else inner(item) for key, item in value.items()}


def _de_model(context: _LoadContext, cls: type, slow: _Conv, value: Any) -> Any:
    if type(value) is not dict:
        return slow(value)
    return _load_model(context, cls, value)


def _de_obj(value: Any) -> Any:
    """`Deserializer.deserialize_object`, for a value that is not None."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if type(item) in _SCALARS:
                out[key] = item
                continue
            try:
                out[key] = _de_obj(item)
            except ValueError:
                out[key] = None
        return out
    if kind is list:
        items: list[Any] = []
        for item in value:
            if type(item) in _SCALARS:
                items.append(item)
                continue
            try:
                converted = _de_obj(item)
            except ValueError:
                continue
            items.append(converted)
        return items
    return _plain_deserializer().deserialize_object(value)
