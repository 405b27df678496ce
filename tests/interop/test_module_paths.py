"""The converters' modules were split by concern; the names users reached
through the old module paths still resolve there, to the same objects."""

import importlib

import pytest

import jaxrnn.interop

# Module -> the names it held before the split, still importable from it.
OLD_PATHS = {
    "jaxrnn.interop.torch_state": [
        "TorchStack",
        "call_like_torch",
        "from_torch",
        "layer_from_torch",
        "to_torch",
    ],
    "jaxrnn.interop.keras_layers": [
        "from_keras",
        "layer_from_keras",
        "to_keras",
    ],
    "jaxrnn.interop.keras_h5": [
        "keras_snake_case",
        "load_keras_weights",
        "save_keras_weights",
    ],
    "jaxrnn.interop.flax_linen": ["from_linen", "to_linen"],
}


@pytest.mark.parametrize(
    "module_name, name",
    [(module, name) for module, names in OLD_PATHS.items() for name in names],
)
def test_old_module_paths_resolve(module_name, name):
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if name in jaxrnn.interop.__all__:
        assert obj is getattr(jaxrnn.interop, name)


def test_torch_state_all_lists_its_public_names():
    from jaxrnn.interop import torch_state

    assert (
        sorted(torch_state.__all__) == OLD_PATHS["jaxrnn.interop.torch_state"]
    )
    assert set(torch_state.__all__) <= set(jaxrnn.interop.__all__)


def test_keras_snake_case_is_the_sequential_one():
    from jaxrnn.interop.keras_h5 import keras_snake_case
    from jaxrnn.layers.sequential import keras_snake_case as original

    assert keras_snake_case is original
    assert keras_snake_case("BatchNormalization") == "batch_normalization"
