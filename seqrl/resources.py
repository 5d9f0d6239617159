"""Files the installed package ships: model card templates (from the top-level `model_cards/`) and
the default run configs (from `recipes/configs/`). A wheel holds them as `seqrl.model_cards` and
`seqrl.configs` (pyproject's package-dir mapping); an editable install or a checkout reads the
top-level folders themselves, so there is one copy of each file."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
_FOLDERS = {"model_cards": _CHECKOUT / "model_cards", "configs": _CHECKOUT / "recipes" / "configs"}


class ResourceError(FileNotFoundError):
    """A file the package should ship is missing: the install is broken."""


def resource(kind: str, name: str):
    """The shipped file `name` of `kind` ("model_cards" or "configs"), as a readable path."""
    try:
        root = importlib.resources.files(f"seqrl.{kind}")
    except ModuleNotFoundError:  # a checkout or an editable install: the top-level folder
        root = _FOLDERS[kind]
    path = root
    for part in name.split("/"):  # one part at a time: a namespace package's MultiplexedPath takes one
        path = path.joinpath(part)
    if not path.is_file():
        raise ResourceError(f"seqrl ships no {kind}/{name}: the installation is incomplete (reinstall seqrl)")
    return path


def has_resource(kind: str, name: str) -> bool:
    try:
        resource(kind, name)
        return True
    except ResourceError:
        return False


def default_config(name: str) -> str:
    """Path of a shipped default YAML, e.g. default_config("iql/invertedpendulum-medium.yaml")."""
    with importlib.resources.as_file(resource("configs", name)) as path:
        return str(path)
