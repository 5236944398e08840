"""Config machinery shared by every stage.

Each stage defines its own frozen ``kw_only`` dataclass (``SynthConfig``,
``TokenizerConfig``, ``ModelConfig``...) with a ``PRESETS`` dict next to it.
This module holds what they share: building a config from a dict while
refusing unknown keys, typed ``key=value`` overrides from the command line,
config files (YAML or JSON) turned into the same overrides, preset lookup
with a helpful error, the integer range check of ``__post_init__``
(:func:`require_ints`) and JSON round trips.

Config files (``--config FILE``): a mapping whose keys are the ``--set`` keys
of the command; nested mappings become dotted keys (``train: {lr: 3e-4}`` is
``train.lr=3e-4``), lists become comma lists (``fsq_levels: [8, 5, 5]``) and
null is ``none``. :func:`file_overrides` flattens a file into ``key=value``
strings, so a file is parsed, type-checked and reported exactly like
``--set`` (an unknown key or a value of the wrong type is a ConfigError
naming the dotted key); ``--set`` is applied after the file. YAML needs
PyYAML (``.yaml``/``.yml``); ``.json`` needs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import types
import typing
from typing import Any, Mapping, Sequence, TypeVar

from mm_jax.errors import ConfigError

C = TypeVar("C")


def get_preset(presets: Mapping[str, C], name: str, *, kind: str = "preset") -> C:
    """Returns ``presets[name]`` or raises ConfigError listing the valid names."""
    try:
        return presets[name]
    except KeyError:
        raise ConfigError(
            f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(presets))}"
        ) from None


def require_ints(cfg: Any, names: Sequence[str], minimum: int) -> None:
    """Raises ConfigError unless each field in ``names`` of ``cfg`` is an int >= ``minimum``.

    The message names the class and field: ``"TrainConfig.steps=0 must be a positive
    int"`` for ``minimum=1``, ``"... must be an int >= N"`` otherwise. ``bool`` is an
    int subclass and passes like 0 or 1.
    """
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < minimum:
            want = "a positive int" if minimum == 1 else f"an int >= {minimum}"
            raise ConfigError(f"{type(cfg).__name__}.{name}={value!r} must be {want}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _parse_value(text: str, tp: Any, key: str) -> Any:
    """Parses a command-line string into a value of type ``tp`` (ConfigError naming ``key``)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return _parse_value(text, non_none[0], key)
    if origin is typing.Literal:
        if text not in args:
            raise ConfigError(f"{key}={text!r} is not one of {list(args)}")
        return text
    if origin in (tuple, list):
        inner = args[0] if args else str
        bare = text.translate(str.maketrans("", "", "()[]"))
        items = [s for s in bare.split(",") if s.strip()]
        return tuple(_parse_value(s.strip(), inner, key) for s in items)
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={text!r} is not a boolean (true/false)")
    if tp in (int, float, str):
        try:
            return tp(text)
        except ValueError:
            raise ConfigError(f"{key}={text!r} is not a valid {tp.__name__}") from None
    raise ConfigError(f"{key}: cannot parse a value of type {tp!r} from the command line")


def _coerce(value: Any, tp: Any) -> Any:
    """Turns JSON values (lists) back into the dataclass field's type (tuples)."""
    origin = typing.get_origin(tp)
    if isinstance(value, list) and origin in (tuple, list):
        inner = typing.get_args(tp)
        return tuple(_coerce(v, inner[0]) if inner else v for v in value)
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return from_dict(tp, value)
    return value


def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Builds ``cls`` from a mapping; an unknown key is a ConfigError."""
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} key(s) {unknown}; valid keys: {', '.join(sorted(types_))}"
        )
    return cls(**{k: _coerce(v, types_[k]) for k, v in data.items()})


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def apply_overrides(cfg: C, overrides: Sequence[str], *, prefix: str = "") -> C:
    """Applies ``key=value`` strings to a config with typed parsing.

    Args:
      cfg: a frozen config dataclass.
      overrides: strings such as ``"width=128"`` or ``"levels=8,8,5"``.
      prefix: prepended to the keys named in errors (``"train."`` for a section).

    Returns:
      A new config (``dataclasses.replace``); the input is unchanged.

    Raises:
      ConfigError: for a malformed string, an unknown key or a bad value.
    """
    types_ = _field_types(type(cfg))
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in types_:
            raise ConfigError(
                f"unknown {type(cfg).__name__} key {key!r}{f' ({prefix}{key})' if prefix else ''}; "
                f"valid keys: {', '.join(sorted(types_))}"
            )
        changes[key] = _parse_value(text.strip(), types_[key], prefix + key)
    return dataclasses.replace(cfg, **changes)


def read_config_file(path: str | pathlib.Path) -> dict[str, Any]:
    """The mapping in a ``.yaml``/``.yml`` (PyYAML) or ``.json`` config file.

    Raises:
      ConfigError: a missing or unparsable file, another suffix, or a top level that is not a mapping.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"config file {path}: suffix {suffix or '(none)'!r} is not one of .yaml, .yml, .json")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"config file {path}: YAML needs PyYAML (pip install pyyaml); "
                              "or write the file as .json") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return dict(data)


def _scalar_text(value: Any, key: str) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ConfigError(f"{key}: a {type(value).__name__} value is not a config value (scalar, list or mapping)")


def file_overrides(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """A config file's mapping as ``key=value`` strings (nested mappings -> dotted keys, lists -> ``a,b``).

    Raises:
      ConfigError: a non-string key, or a list holding a mapping or a list (naming the dotted key).
    """
    out: list[str] = []
    for k, value in data.items():
        if not isinstance(k, str) or not k:
            raise ConfigError(f"config key {prefix}{k!r} must be a non-empty string")
        key = prefix + k
        if isinstance(value, Mapping):
            out += file_overrides(value, key + ".")
        elif isinstance(value, (list, tuple)):
            out.append(f"{key}=" + ",".join(_scalar_text(v, key) for v in value))
        else:
            out.append(f"{key}={_scalar_text(value, key)}")
    return out


def save_json(cfg: Any, path: str | pathlib.Path) -> None:
    """Writes a config as indented JSON."""
    pathlib.Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")


def load_json(cls: type[C], path: str | pathlib.Path) -> C:
    """Reads a config written by :func:`save_json`."""
    try:
        data = json.loads(pathlib.Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {cls.__name__} from {path}: {e}") from None
    return from_dict(cls, data)
