"""The examples in the parsers' docstrings run and hold (they are the modules' shortest documentation)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ibconform.parsers

MODULES = sorted(info.name for info in pkgutil.iter_modules(ibconform.parsers.__path__, "ibconform.parsers."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"
