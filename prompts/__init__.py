"""Every text the product speaks with, loaded by name: `load_prompt("system", **vars)`."""

from __future__ import annotations

import string
from functools import cache
from importlib import resources

import yaml


class PromptError(KeyError):
    """A prompt that does not exist, or placeholders that do not match what the caller passes."""


@cache
def _text(filename: str) -> str:
    path = resources.files("prompts").joinpath(filename)
    if not path.is_file():
        raise PromptError(f"no prompt file prompts/{filename}")
    return path.read_text(encoding="utf-8")


def placeholders(template: str) -> set[str]:
    """Names of the `{placeholders}` in a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def load_prompt(name: str, **values: object) -> str:
    """The Markdown prompt `prompts/<name>.md` with its placeholders filled; they must match exactly."""
    template = _text(f"{name}.md")
    return fill(template, f"prompts/{name}.md", **values)


def fill(template: str, where: str, **values: object) -> str:
    """Fill `template`; refuse missing or unexpected values (names them and `where`)."""
    wanted = placeholders(template)
    if missing := wanted - values.keys():
        raise PromptError(f"{where}: missing values for {sorted(missing)}")
    if extra := values.keys() - wanted:
        raise PromptError(f"{where}: unexpected values {sorted(extra)}")
    return template.format(**values)


def load_yaml(name: str) -> dict:
    """The YAML file `prompts/<name>.yaml`."""
    return yaml.safe_load(_text(f"{name}.yaml"))
