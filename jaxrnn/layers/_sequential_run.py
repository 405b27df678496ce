"""How a `Sequential` runs its layers: each layer's call (or `apply`,
which also returns new params), with its mask, key, training flag and,
for a stateful layer, its states, handing the output and the mask it
computes on to the next layer. On a CUDA GPU a run of plain LSTM layers
of one width goes to cuDNN as one multi-layer call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import _cudnn
from jaxrnn._rnn import rnn
from jaxrnn.cells.stacked import StackedCells
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
    start = 0
    while start < count:
        end = _cudnn_stack(layers, start, x, training)
        if end - start > 1:
            x, mask = _run_cudnn_stack(
                layers[start:end], params[start:end], x, mask
            )
            new_params.extend(params[start:end])
            new_states.extend([None] * (end - start))
            start = end
            continue
        x, p, mask, state = _run_layer(
            layers[start],
            params[start],
            x,
            mask,
            states[start],
            keys[start],
            training,
        )
        new_params.append(p)
        new_states.append(state)
        start += 1
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


def _cudnn_stack(
    layers: Sequence[Any], start: int, x: Any, training: bool
) -> int:
    """The end of the run of LSTM layers from `start` that cuDNN can take
    as one multi-layer call (`start + 1` where there is none): on a CUDA
    GPU, plain LSTM layers of one width that may take cuDNN, each but the
    last returning sequences, none stateful, reversed or returning states,
    and no dropout drawn (the stack's masks would differ from the
    layers')."""
    from jaxrnn.layers.recurrent import LSTM  # imports this package

    end = start
    while end < len(layers):
        layer = layers[end]
        if not (
            type(layer) is LSTM
            and layer.use_cudnn is not False
            and not (
                layer.stateful or layer.return_state or layer.go_backwards
            )
            and not (training and (layer.dropout or layer.recurrent_dropout))
            and layer.units == layers[start].units
            and layer.time_major == layers[start].time_major
            and not layer.unroll
            and not layer.remat
        ):
            break
        end += 1
        if not layer.return_sequences:
            break
    if end - start < 2 or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        return start + 1
    if _cudnn.backend_name() != "cuda":
        return start + 1
    return end


def _run_cudnn_stack(
    layers: Sequence[Any], params: Sequence[Any], x: Any, mask: Any
) -> tuple[Any, Any]:
    """The LSTM layers `_cudnn_stack` found, as one `rnn` call on their
    stacked cells: (the last layer's output, its output mask)."""
    last = layers[-1]
    use_cudnn = (
        True if any(layer.use_cudnn is True for layer in layers) else "auto"
    )
    y, _ = rnn(
        StackedCells([layer.cell for layer in layers]),
        list(params),
        x,
        mask=mask,
        time_major=last.time_major,
        return_sequences=last.return_sequences,
        zero_output_for_mask=last.zero_output_for_mask,
        use_cudnn=use_cudnn,
    )
    return y, last.compute_mask(x, mask)
