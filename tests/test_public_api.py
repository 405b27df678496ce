"""Every public name resolves and is documented."""

import inspect

import pytest

import jaxrnn
import jaxrnn.interop
import jaxrnn.layers


@pytest.mark.parametrize("module", [jaxrnn, jaxrnn.layers, jaxrnn.cells, jaxrnn.interop])
def test_all_names_resolve_and_have_docstrings(module):
    for name in module.__all__:
        obj = getattr(module, name)
        assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


def test_version():
    assert isinstance(jaxrnn.__version__, str) and jaxrnn.__version__.count(".") == 2


def test_all_is_sorted():
    assert jaxrnn.__all__ == sorted(jaxrnn.__all__)
