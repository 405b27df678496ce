"""Every public name resolves and is documented."""

import inspect

import pytest

import jaxrnn
import jaxrnn.interop
import jaxrnn.layers


@pytest.mark.parametrize(
    "module", [jaxrnn, jaxrnn.layers, jaxrnn.cells, jaxrnn.interop]
)
def test_all_names_resolve_and_have_docstrings(module):
    for name in module.__all__:
        obj = getattr(module, name)
        assert inspect.getdoc(obj), (
            f"{module.__name__}.{name} has no docstring"
        )


def test_version():
    assert (
        isinstance(jaxrnn.__version__, str)
        and jaxrnn.__version__.count(".") == 2
    )


def test_all_is_sorted():
    assert jaxrnn.__all__ == sorted(jaxrnn.__all__)


def test_imports_with_docstrings_stripped():
    """`python -OO` drops docstrings; the layers compose theirs from the
    cells' at import, which must not need them."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-OO",
            "-c",
            "import jaxrnn, jaxrnn.layers, jaxrnn.interop; "
            "print(jaxrnn.LSTM(4).units)",
        ],  # -OO strips `assert` too
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "4"
