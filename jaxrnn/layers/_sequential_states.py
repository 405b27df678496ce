"""The states a stateful `Sequential` threads from one call to the next.

Keras' char-RNN pattern keeps a ``stateful=True`` layer's last states for
the next chunk of the stream. A `Sequential` keeps none: the caller holds
a list with one entry per layer (None for a stateless layer, the layer's
states in Keras' order for a stateful one, a nested list for a nested
model) and passes it back. This module knows that list's shapes, found
from the layers' own outputs with `jax.eval_shape` and cached per model
and input shape, and checks a list the caller hands back against them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.layers._sequential_params import describe_tree
from jaxrnn.layers._sequential_shapes import walk_shapes
from jaxrnn.layers.bidirectional import Bidirectional

if TYPE_CHECKING:
    from jaxrnn.layers.sequential import Sequential


def is_stateful(layer: Any) -> bool:
    """Whether `layer` threads states between calls (``stateful=True``)."""
    return bool(getattr(layer, "stateful", False))


def outputs_count(layer: Any) -> int:
    """How many outputs a stateful layer returns before its states."""
    # Bidirectional without a merge returns [y, y_rev] before its states.
    return (
        2
        if isinstance(layer, Bidirectional) and layer.merge_mode is None
        else 1
    )


def _layer_state_structs(
    layer: Any, i: int, shape: tuple[Any, ...]
) -> list[Any]:
    """Shapes and dtypes of a stateful layer's states for inputs `shape`."""
    n = outputs_count(layer)
    wanted = layer.output_shape(shape)[n:]
    if any(d is None for state in wanted for d in state):
        raise ValueError(
            f"layers[{i}] ({type(layer).__name__}) is stateful, and its "
            f"states {[tuple(w) for w in wanted]} need known sizes, got "
            f"inputs {tuple(shape)}: pass a shape with a fixed batch size "
            "(Keras' keras.Input(batch_shape=(B, ...))), e.g. x.shape."
        )
    # The time size does not reach the states; the batch size was checked.
    concrete = tuple(1 if d is None else d for d in shape)
    result = jax.eval_shape(
        lambda: layer(
            layer.init(jax.random.key(0), shape),
            jnp.zeros(concrete, jnp.float32),
        )
    )
    return list(result[n:])


def _state_structs(model: Sequential, shape: tuple[Any, ...]) -> list[Any]:
    """Per layer: None, or the states' ShapeDtypeStructs (a nested
    Sequential: its own list)."""
    from jaxrnn.layers.sequential import Sequential  # imports this module

    shapes = walk_shapes(model.layers, shape, "input_shape")
    structs = []
    for i, (layer, layer_shape) in enumerate(zip(model.layers, shapes)):
        if not is_stateful(layer):
            structs.append(None)
        elif isinstance(layer, Sequential):
            structs.append(_state_structs(layer, layer_shape))
        else:
            structs.append(_layer_state_structs(layer, i, layer_shape))
    return structs


_cached_state_structs = functools.lru_cache(maxsize=64)(_state_structs)


def state_structs(model: Sequential, shape: tuple[Any, ...]) -> list[Any]:
    """The states' shapes and dtypes, as `initial_states` lays them out,
    for inputs of `shape`; raises unless the batch size is known."""
    try:
        return _cached_state_structs(model, tuple(shape))
    except TypeError:  # an unhashable custom layer or shape: no cache
        return _state_structs(model, tuple(shape))


def no_state_message(model: Sequential, what: str) -> str:
    """The error for `what` (``states``, ...) given to a model that has
    no stateful layer."""
    return (
        f"`{what}` is for a model with stateful layers, and no layer "
        f"of this Sequential has stateful=True (layers: "
        f"{[type(layer).__name__ for layer in model.layers]})."
    )


def check_states(model: Sequential, states: Any, shapes: list[Any]) -> None:
    """`states` against `initial_states` for inputs `shapes[0]`, so a
    wrong batch size or a stateless layer's entry fails here, by index.

    Args:
      model: the model the states are for.
      states: what the caller passed as ``states=``.
      shapes: the model's input shape then each layer's output shape, as
        `walk_shapes` gives them.
    """
    from jaxrnn.layers.sequential import Sequential  # imports this module

    if not model.stateful:
        raise ValueError(no_state_message(model, "states"))
    if not isinstance(states, (list, tuple)) or len(states) != len(
        model.layers
    ):
        raise ValueError(
            f"`states` must be a list of {len(model.layers)} entries (one "
            "per layer, None for a stateless layer), as `initial_states` "
            f"returns, got {describe_tree(states)}."
        )
    expected = state_structs(model, shapes[0])
    for i, (layer, want, have) in enumerate(
        zip(model.layers, expected, states)
    ):
        name = f"layers[{i}] ({type(layer).__name__})"
        if have is None:
            continue
        if want is None:
            raise ValueError(
                f"`states[{i}]` must be None as {name} is "
                f"not stateful, got {describe_tree(have)}."
            )
        if isinstance(layer, Sequential):
            check_states(
                layer, have, walk_shapes(layer.layers, shapes[i], "inputs")
            )
            continue
        want_shapes = [s.shape for s in want]
        got = [tuple(np.shape(a)) for a in jax.tree.leaves(have)]
        if got != want_shapes:
            raise ValueError(
                f"`states[{i}]` for {name} must hold {len(want_shapes)} "
                f"array(s) of shapes {want_shapes} for inputs "
                f"{tuple(shapes[0])}, got {got}."
            )
