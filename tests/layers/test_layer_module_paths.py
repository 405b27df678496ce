"""The companion layers' modules were split by concept; the names users
reached through the old module paths still resolve there, to the same
objects as `jaxrnn.layers` exports."""

import importlib

import pytest

import jaxrnn.layers

# Module -> the names it held before the split, still importable from it.
OLD_PATHS = {
    "jaxrnn.layers.sequential": ["Sequential", "keras_snake_case", "summary"],
    "jaxrnn.layers.core": [
        "Dense",
        "Dropout",
        "Embedding",
        "PassMask",
        "TimeDistributed",
    ],
    "jaxrnn.layers.normalization": [
        "BatchNormalization",
        "LayerNormalization",
    ],
    "jaxrnn.layers.convolutional": ["Conv1D"],
    "jaxrnn.layers.pooling": [
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "MaxPooling1D",
    ],
}


@pytest.mark.parametrize(
    "module_name, name",
    [(module, name) for module, names in OLD_PATHS.items() for name in names],
)
def test_old_module_paths_resolve(module_name, name):
    obj = getattr(importlib.import_module(module_name), name)
    if name in jaxrnn.layers.__all__:
        assert obj is getattr(jaxrnn.layers, name)


def test_masking_rules_share_one_base():
    from jaxrnn.layers._base import PassMask
    from jaxrnn.layers.core import PassMask as old_path
    from jaxrnn.layers.masking import DropsMask

    assert old_path is PassMask
    assert issubclass(DropsMask, PassMask)
