"""How a `Sequential` runs its layers: each layer's call (or `apply`,
which also returns new params), with its mask, key, training flag and,
for a stateful layer, its states, handing the output and the mask it
computes on to the next layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jaxrnn.layers._sequential_states import is_stateful, outputs_count


def run_layers(
    layers: Sequence[Any],
    params: Sequence[Any],
    x: Any,
    mask: Any,
    states: Any,
    key: Any,
    training: bool,
) -> tuple:
    """(output, new_params, output mask, new_states) of `layers` in turn;
    `key` is split between them, `states` is one entry per layer (None:
    none or zeros)."""
    count = len(layers)
    keys = (
        [None] * count if key is None else list(jax.random.split(key, count))
    )
    states = [None] * count if states is None else states
    new_params, new_states = [], []
    for layer, p, state, k in zip(layers, params, states, keys):
        x, p, mask, state = _run_layer(layer, p, x, mask, state, k, training)
        new_params.append(p)
        new_states.append(state)
    return x, new_params, mask, new_states


def _run_layer(
    layer: Any,
    params: Any,
    x: Any,
    mask: Any,
    state: Any,
    key: Any,
    training: bool,
) -> tuple[Any, Any, Any, Any]:
    """One layer's step: (output, new_params, mask for the next layer,
    new_state or None)."""
    from jaxrnn.layers.sequential import Sequential  # imports this module

    if isinstance(layer, Sequential):
        # Its own output mask and states, not the mask it was given.
        y, params, mask, state = layer._run(
            params, x, mask, state, key, training
        )
        return y, params, mask, state if layer.stateful else None
    stateful = is_stateful(layer)
    kwargs = {"mask": mask, "key": key, "training": training}
    if stateful:
        kwargs["initial_state"] = state
    if hasattr(layer, "apply"):
        y, params = layer.apply(params, x, **kwargs)
    else:
        y = layer(params, x, **kwargs)
    if stateful:
        # A stateful layer returns [output, *states] (Keras' state order).
        n = outputs_count(layer)
        y, state = (y[0] if n == 1 else list(y[:n])), list(y[n:])
    if hasattr(layer, "compute_mask"):
        mask = layer.compute_mask(x, mask)
    return y, params, mask, state
