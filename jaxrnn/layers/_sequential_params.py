"""Checking a `Sequential`'s params list against its layers.

A `Sequential`'s params are a list with one entry per layer, in the order
`init` gives them. A list in another order, or an entry missing, would
otherwise fail deep inside some layer as a KeyError or a shape error;
`check_model_params` compares each entry's tree paths and leaf shapes
with what the layer's own ``init`` makes (through `jax.eval_shape`, cached
per model and input shape) and names the entry, the layer, and where it
can, the layer whose params were given instead. `trainable_entries`
marks which entries an optimizer may move.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

if TYPE_CHECKING:
    from jaxrnn.layers.sequential import Sequential


def describe_tree(tree: Any) -> str:
    """A pytree's top level in a few words, for error messages."""
    if isinstance(tree, dict):
        return f"keys {sorted(map(str, tree))}"
    if isinstance(tree, (list, tuple)):
        return f"a {type(tree).__name__} of {len(tree)}"
    return type(tree).__name__


def _leaf_paths(tree: Any) -> tuple[str, ...]:
    # Paths, not treedefs: a list where init gives a tuple is no error.
    return tuple(
        sorted(
            jax.tree_util.keystr(path)
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]
        )
    )


def _leaf_shapes(tree: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(
        sorted(
            (jax.tree_util.keystr(path), tuple(np.shape(leaf)))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        )
    )


def _init_params_paths(model: Sequential, shape: tuple[Any, ...]) -> tuple:
    """Per layer, what `init` makes: leaf paths, a description, leaf
    shapes."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), shape))
    return (
        tuple(map(_leaf_paths, shapes)),
        tuple(map(describe_tree, shapes)),
        tuple(map(_leaf_shapes, shapes)),
    )


_cached_params_paths = functools.lru_cache(maxsize=64)(_init_params_paths)


def check_model_params(
    model: Sequential, params: Sequence[Any], shape: tuple[Any, ...]
) -> None:
    """Each entry's structure against its layer's `init`, so params in
    the wrong order fail here, by index, not as a KeyError inside.

    Args:
      model: the model the params are for.
      params: a list with one entry per layer (its length checked).
      shape: the model's input shape.
    """
    try:
        hash(model)
    except TypeError:  # an unhashable custom layer: no cache
        expected, described, shapes = _init_params_paths(model, tuple(shape))
    else:
        expected, described, shapes = _cached_params_paths(model, tuple(shape))
    layers = model.layers
    got = [_leaf_paths(p) for p in params]
    for i, (want, have) in enumerate(zip(expected, got)):
        if want == have:
            # Same keys: a swap shows in the shapes (LSTM and GRU
            # params); other shape errors are the layer's to explain.
            have_shapes = _leaf_shapes(params[i])
            swapped = [
                j
                for j, s in enumerate(shapes)
                if s == have_shapes and s != shapes[i]
            ]
            if swapped:
                j = swapped[0]
                raise ValueError(
                    f"Sequential params[{i}] does not fit layers[{i}] "
                    f"({type(layers[i]).__name__}): its arrays have "
                    f"the shapes of layers[{j}] "
                    f"({type(layers[j]).__name__})'s params: params "
                    "may be in the wrong order; keep `init`'s order, one "
                    "entry per layer."
                )
            continue
        message = (
            f"Sequential params[{i}] does not fit layers[{i}] "
            f"({type(layers[i]).__name__}): it expects "
            f"{described[i]}, got {describe_tree(params[i])}"
        )
        fits = [j for j, paths in enumerate(expected) if paths == have]
        if fits:
            message += (
                f", the params of layers[{fits[0]}] "
                f"({type(layers[fits[0]]).__name__}): params "
                f"may be in the wrong order; keep `init`'s order, "
                f"one entry per layer"
            )
        raise ValueError(message + ".")


def trainable_entries(layer: Any, params: Any) -> Any:
    """A pytree like one layer's `params`: False for the entries the layer
    lists as ``non_trainable`` (batch-norm statistics), True elsewhere."""
    frozen = getattr(layer, "non_trainable", ())
    if isinstance(params, dict):
        return {
            k: (k not in frozen)
            if not isinstance(v, (dict, list))
            else jax.tree.map(lambda _: True, v)
            for k, v in params.items()
        }
    return jax.tree.map(lambda _: True, params)
