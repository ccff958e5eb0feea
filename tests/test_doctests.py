"""The examples in docstrings run: every module of the packages that has one."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                 for package in ("tools", "agent", "data", "ui", "benchmarks")
                 for p in (ROOT / package).rglob("*.py") if ">>> " in p.read_text(encoding="utf-8"))


def test_the_packages_have_examples() -> None:
    assert "tools.stats" in MODULES and "tools.timescan" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
