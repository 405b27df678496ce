"""Shared test set-up: strict dtype promotion, Keras on JAX, fresh keys."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
# The suite checks meaning, not speed: XLA's backend (LLVM) optimizations
# cost about a third of its CPU time and change no HLO pass, so no compiled
# structure a test inspects (CONTRIBUTING.md, "Running the tests"). Set
# in the environment so that scripts the tests start inherit it; CI's
# thorough pass sets it to 0 and runs fully optimized.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import itertools
import sys

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
# Again, in case a plugin imported jax before this file set the variable.
jax.config.update(
    "jax_disable_most_optimizations",
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] not in ("", "0", "false"),
)


def pytest_runtest_setup(item):
    """One torch thread per test worker, once a test module has imported
    torch: two workers of two threads each on two cores run 30x slower."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


# The parity tests compare float32 results to about 1e-5. On GPUs and TPUs
# JAX's default float32 matmul precision is reduced (TF32 on recent NVIDIA
# GPUs), so there the suite runs at "highest", true float32, unless
# JAXRNN_TEST_PRECISION names another. The CPU computes float32 either way.
if jax.default_backend() != "cpu":
    jax.config.update(
        "jax_default_matmul_precision",
        os.environ.get("JAXRNN_TEST_PRECISION", "highest"),
    )

_counter = itertools.count()


@pytest.fixture
def key():
    """A fresh PRNG key per use, distinct across the session."""
    return jax.random.key(next(_counter))


@pytest.fixture
def keys():
    """A factory of distinct PRNG keys: ``keys(3)`` -> list of 3 keys."""

    def make(n):
        return list(jax.random.split(jax.random.key(1000 + next(_counter)), n))

    return make


def pytest_collection_modifyitems(config, items):
    """Marks hypothesis tests `property`: CI reruns them with
    JAXRNN_THOROUGH=1 (tests/properties.py). Marks the cases outside a
    wide matrix's default subset `slow` (tests/subsets.py). Runs before
    pytest deselects by mark."""
    for item in items:
        function = getattr(item, "function", None)
        if getattr(function, "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)
        keep = getattr(function, "default_subset", None)
        callspec = getattr(item, "callspec", None)
        if keep is not None and callspec and not keep(**callspec.params):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session):
    """xdist workers hand their parity errors to the controller."""
    from keras_helpers import PARITY_ERRORS

    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["parity_errors"] = dict(PARITY_ERRORS)


@pytest.hookimpl(optionalhook=True)  # an xdist hook; -p no:xdist works too
def pytest_testnodedown(node, error):
    from keras_helpers import PARITY_ERRORS

    for name, value in (
        getattr(node, "workeroutput", {}).get("parity_errors", {}).items()
    ):
        PARITY_ERRORS[name] = max(PARITY_ERRORS.get(name, 0.0), value)


def pytest_terminal_summary(terminalreporter):
    """Prints the worst parity error (Keras, PyTorch) per case group."""
    from keras_helpers import PARITY_ERRORS

    if not PARITY_ERRORS:
        return
    groups: dict[str, float] = {}
    for name, error in PARITY_ERRORS.items():
        group = name.split("[")[0]
        groups[group] = max(groups.get(group, 0.0), error)
    terminalreporter.section(
        "Parity with Keras, PyTorch, Flax, Equinox, Haiku (max abs error, float32)"
    )
    for group, error in sorted(groups.items()):
        terminalreporter.write_line(f"{group:<40} {error:.2e}")
    terminalreporter.write_line(
        f"{'worst overall':<40} {max(groups.values()):.2e}"
    )
