"""Dataclass configs from YAML files and command-line overrides, with `--help` for every field."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path

import yaml


def _parser_type(tp):
    """(argparse type, nargs) for a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        base, nargs = _parser_type(inner)
        return (lambda s: None if s.lower() in ("none", "null") else base(s)), nargs
    if origin is tuple:
        args = typing.get_args(tp)
        return args[0], ("+" if Ellipsis in args else len(args))
    return tp, None


def build_parser(cls, description: str, default_config: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=default_config,
                        help="YAML file with any of the options below; command-line flags override it")
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


def parse_config(cls, argv=None, description: str = "", default_config: str | None = None):
    """YAML (from --config) < command-line flags; unknown YAML keys are an error."""
    parser = build_parser(cls, description, default_config)
    args = parser.parse_args(argv)
    values = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            parser.error(f"config file not found: {path}")
        values = yaml.safe_load(path.read_text()) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            parser.error(f"{path} has unknown options {unknown}")
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name)
        if v is not None:
            values[f.name] = v
    for f in dataclasses.fields(cls):
        if typing.get_origin(typing.get_type_hints(cls)[f.name]) is tuple and f.name in values:
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def to_dict(config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
