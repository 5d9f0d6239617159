"""Dataclass configs from YAML files and command-line overrides, with `--help` for every field."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path

import yaml


def _parser_type(tp):
    """(argparse type, nargs) for a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) > 1:  # several types (percentile: 'mean' or a number): read as YAML, checked later
            return yaml.safe_load, None
        base, nargs = _parser_type(inner[0])
        return (lambda s: None if s.lower() in ("none", "null") else base(s)), nargs
    if origin is tuple:
        args = typing.get_args(tp)
        return args[0], ("+" if Ellipsis in args else len(args))
    return tp, None


class ConfigError(ValueError):
    """An option value that cannot work (a count below 1, a wrong type): one line naming it."""


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def check_type(name: str, value, tp):
    """`value` converted to the field type `tp`, or ConfigError (YAML values are not typed by argparse)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for inner in (a for a in args if a is not type(None)):
            try:
                return check_type(name, value, inner)
            except ConfigError:
                continue
        raise ConfigError(f"{name} must be {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list of {_type_name(inner)}, got {value!r}")
        return tuple(check_type(name, v, inner) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"{name} must be text, got {value!r}")
    return value


def check_ranges(config, minimums: dict[str, float]) -> None:
    """Every named option at or above its minimum (None passes: "not set")."""
    for name, low in minimums.items():
        value = getattr(config, name, None)
        if value is not None and value < low:
            raise ConfigError(f"--{name} must be at least {low:g}, got {value}")


# a YAML path, or a function from the --dataset flag (None without one) to the YAML a run starts from
DefaultConfig = str | Callable[[str | None], str | None] | None


def build_parser(cls, description: str, default_config: DefaultConfig = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    shown = default_config(None) if callable(default_config) else default_config
    parser.add_argument("--config", default=None,
                        help="YAML file with any of the options below; command-line flags override it (default: "
                             + (f"{shown}, or with --dataset that dataset's shipped settings where seqrl has them)"
                                if callable(default_config) else f"{shown})"))
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flags = [f"--{f.name}", *f.metadata.get("aliases", ())]
        if tp is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} (default: {default})")
            continue
        arg_type, nargs = _parser_type(tp)
        parser.add_argument(*flags, dest=f.name, type=arg_type, nargs=nargs, default=None,
                            help=f"{help_text} (default: {default})")
    return parser


def read_yaml_mapping(path, what: str = "file") -> dict:
    """A YAML file of key: value lines, or ConfigError naming what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold option: value lines, not a {type(values).__name__}")
    return values


def parse_config(cls, argv=None, description: str = "", default_config: DefaultConfig = None):
    """YAML (from --config, else `default_config`) < command-line flags; unknown YAML keys are an
    error. A callable `default_config` picks the YAML from the `--dataset` flag (a dataset's own
    shipped settings). A file's `output_dir` belongs to the file's `dataset`: a `--dataset` flag
    naming another dataset, without `--output_dir`, leaves the output directory to the command's
    default for that dataset (so that a run on other data does not write over the file's run)."""
    parser = build_parser(cls, description, default_config)
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = default_config(getattr(args, "dataset", None)) if callable(default_config) else default_config
        if args.config and getattr(args, "dataset", None):
            print(f"config: {args.config}")
    values = {}
    if args.config:
        path = Path(args.config)
        values = read_yaml_mapping(path, "config file")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{path} has unknown options {unknown}")
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name) is not None}
    if "output_dir" in values and flags.get("dataset", values.get("dataset")) != values.get("dataset") \
            and "output_dir" not in flags:
        del values["output_dir"]
    values |= flags
    hints = typing.get_type_hints(cls)
    try:
        values = {k: check_type(k, v, hints[k]) for k, v in values.items()}
    except ConfigError as err:
        raise ConfigError(f"{args.config}: {err}" if args.config else str(err)) from None
    return cls(**values)


def output_name(source: str) -> str:
    """A directory name for runs on `source` (a dataset id or path, a checkpoint path or Hub id):
    an existing path's own name (a checkpoint's OUTPUT/ALGO/RUN/model: ALGO-RUN), else the id with
    its slashes as dashes, so that seqrl/hopper/medium-v0 and seqrl/walker2d/medium-v0 (or
    mujoco/hopper/medium-v0) do not share one directory."""
    path = Path(source)
    if path.exists():
        path = path.resolve()
        return f"{path.parent.parent.name}-{path.parent.name}" if path.name == "model" else path.stem
    return str(source).strip("/").replace("/", "-")


def combine(name: str, *classes, help_texts: dict[str, str] | None = None):
    """One dataclass with the fields of every class (same names, types, defaults, help), so that one
    YAML file and one command line set them all and `--help` lists them all; `split` takes them apart."""
    fields, seen = [], {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.name in seen:
                raise TypeError(f"{cls.__name__}.{f.name} clashes with {seen[f.name]}.{f.name}")
            seen[f.name] = cls.__name__
            default = {"default": f.default} if f.default is not dataclasses.MISSING else {"default_factory": f.default_factory}
            metadata = dict(f.metadata)
            if "help" not in metadata:
                metadata["help"] = (help_texts or {}).get(f.name, f"{cls.__name__} {f.name}")
            fields.append((f.name, hints[f.name], dataclasses.field(metadata=metadata, **default)))
    return dataclasses.make_dataclass(name, fields)


def split(config, cls):
    """An instance of `cls` from the fields of a `combine`d config it has."""
    values = dataclasses.asdict(config)
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.init})


def to_dict(config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
