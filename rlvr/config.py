"""Typed configs: nested dataclasses <-> YAML, with dotted `key=value` overrides.

- Every field carries `metadata={"help": ...}` (units, and the paper a default comes from);
  `iter_fields(cls)` walks them and a test asserts none lacks help.
- `load_config(cls, path, overrides)`: a YAML preset may start with `base: other.yaml` (a path
  relative to it) and then lists only what differs; overrides like `algo.kl_coef=0.01` follow.
  Values are parsed as YAML (1e-6, true, [1, 2], null) and checked against the field's type.
- Unknown keys and bad values raise `UserError` naming the key, the closest valid key, and the
  valid choices.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from rlvr.errors import UserError, closest


def field_help(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


def iter_fields(cls, prefix: str = ""):
    """Yield (dotted name, field, resolved type) for every leaf field of a nested dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            yield prefix + f.name, f, t
            yield from iter_fields(t, prefix + f.name + ".")
        else:
            yield prefix + f.name, f, t


def _coerce(value: Any, t, key: str):
    origin, args = get_origin(t), get_args(t)
    if t is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise UserError(f"{key}={value!r} is not valid{closest(str(value), [str(a) for a in args])} "
                            f"(choices: {', '.join(map(str, args))})")
        return value
    if origin in (Union, getattr(__import__("types"), "UnionType", Union)):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value] if value is not None else []
        inner = args[0] if args else Any
        return [_coerce(v, inner, key) for v in value]
    if origin is dict or t is dict:
        if not isinstance(value, dict):
            raise UserError(f"{key} must be a mapping, got {value!r}")
        return value
    if t is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{key} must be true or false, got {value!r}")
    if t is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise UserError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise UserError(f"{key} must be a number, got {value!r}")
        return float(value)
    if t is str:
        if not isinstance(value, (str, int, float)):
            raise UserError(f"{key} must be a string, got {value!r}")
        return str(value)
    return value


def _apply(obj, data: dict, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise UserError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for k, v in data.items():
        key = prefix + str(k)
        if k not in names:
            valid = [prefix + n for n in names]
            raise UserError(f"unknown config key {key!r}{closest(key, valid)} (valid here: {', '.join(names)})")
        t = hints[k]
        if dataclasses.is_dataclass(t):
            _apply(getattr(obj, k), v, key + ".")
        else:
            setattr(obj, k, _coerce(v, t, key))


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if not path.exists():
        raise UserError(f"config file {path} does not exist")
    if path in seen:
        raise UserError(f"config {path} inherits from itself (base cycle)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must be a YAML mapping")
    base = data.pop("base", None)
    if base is None:
        return data
    parent = _read_yaml((path.parent / base), seen + (path,))
    return _deep_merge(parent, data)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"override {item!r} must look like key.sub=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Build `cls` from defaults, a YAML preset (with `base:` inheritance) and dotted overrides."""
    cfg = cls.__new__(cls)
    cfg.__init__()  # defaults, without __post_init__ validation running twice on partial data
    data = _read_yaml(Path(path)) if path else {}
    for item in overrides or []:
        keys, value = parse_override(item)
        d = data
        for k in keys[:-1]:
            d = d.setdefault(k, {})
            if not isinstance(d, dict):
                raise UserError(f"override {item!r}: {k} is not a section")
        d[keys[-1]] = value
    _apply(cfg, data)
    validate = getattr(cfg, "validate", None)
    if validate:
        validate()
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
