"""torch's call convention on jaxrnn layers: states and packed sequences.

torch's states are `(num_layers * num_directions, B, H)` arrays, ``h_n``
or ``(h_n, c_n)``, where Keras' layers take and return a flat list per
cell and direction (`state_arrays`, `call_one`, `as_torch_state`).
torch's packed sequences are ``lengths`` that become a right-padded mask
(`packed_mask`), and ``pad_packed_sequence``'s output size and zero
padding (`pad_packed`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn._validation import check_positive_int, check_shape, describe
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.interop._peers import is_concrete
from jaxrnn.interop._torch_cells import COUNTERPARTS
from jaxrnn.layers.bidirectional import Bidirectional


def input_batch_shape(inputs: Any, time_major: bool) -> tuple[int, ...]:
    """(B,) for batched inputs, () for unbatched (T, D) ones."""
    ndim = np.ndim(inputs)
    if ndim not in (2, 3):
        layout = "(T, B, D)" if time_major else "(B, T, D)"
        raise ValueError(
            f"`inputs` must have shape {layout} or unbatched "
            f"(T, D), got {np.shape(inputs)}."
        )
    return () if ndim == 2 else (np.shape(inputs)[1 if time_major else 0],)


def state_arrays(
    initial_state: Any, cell: Any, slots: int, batch_shape: tuple[int, ...]
) -> list[jax.Array] | None:
    """torch's h_0 or (h_0, c_0) as a list of arrays
    `(slots, *batch, H)`."""
    if initial_state is None:
        return None
    is_pair = isinstance(initial_state, (tuple, list))
    if isinstance(cell, LSTMCell) != is_pair or (
        is_pair and len(initial_state) != 2
    ):
        want = "a pair (h_0, c_0)" if isinstance(cell, LSTMCell) else "h_0"
        raise TypeError(
            f"`initial_state` must be {want} for "
            f"{COUNTERPARTS[type(cell)][0]}, got "
            f"{type(initial_state).__name__}"
            + (f" of length {len(initial_state)}." if is_pair else ".")
        )
    states = list(initial_state) if is_pair else [initial_state]
    for name, state in zip(("h_0", "c_0"), states):
        check_shape(
            f"initial_state {name}", state, (slots, *batch_shape, cell.units)
        )
    return [jnp.asarray(state) for state in states]


def packed_mask(
    lengths: Any, total_length: Any, inputs: Any, time_major: bool
) -> tuple[jax.Array | None, int | None]:
    """The mask that `lengths` stand for, (B, T) or time-major (T, B), and
    the output's time size; (None, None) without `lengths`. Checks them as
    ``pack_padded_sequence`` and ``pad_packed_sequence`` do."""
    if lengths is None:
        if total_length is not None:
            raise ValueError(
                "`total_length` sizes the output of packed "
                "sequences: pass it with `lengths`, got "
                "lengths=None."
            )
        return None, None
    shape = np.shape(inputs)
    if len(shape) != 3:
        raise ValueError(
            "`lengths` needs batched inputs, (T, B, D) or "
            "(B, T, D), as torch packs batches; got inputs of "
            f"shape {shape}."
        )
    batch, steps = (shape[1], shape[0]) if time_major else shape[:2]
    lengths = _lengths_array(lengths)
    check_shape("lengths", lengths, (batch,))
    if total_length is not None:
        check_positive_int("total_length", total_length)
    if not is_concrete(lengths):
        if total_length is None:
            raise ValueError(
                "`lengths` are traced (under jax.jit or the like), so the "
                "longest length, the output's time size, is unknown: pass "
                f"total_length (e.g. T = {steps})."
            )
    elif lengths.size:
        shortest, longest = int(lengths.min()), int(lengths.max())
        if shortest < 1 or longest > steps:
            raise ValueError(
                f"`lengths` must lie in [1, T] = [1, {steps}] (torch's "
                f"pack_padded_sequence refuses empty sequences), got "
                f"{np.asarray(lengths).tolist()}."
            )
        if total_length is not None and total_length < longest:
            raise ValueError(
                f"`total_length` must be at least the longest "
                f"length, {longest}, got {total_length}."
            )
        total_length = longest if total_length is None else total_length
    # int32 after the checks: strict promotion refuses int32 < uint8.
    mask = jnp.arange(steps) < lengths.astype(jnp.int32)[:, None]  # (B, T)
    return (mask.T if time_major else mask), total_length


def _lengths_array(lengths: Any) -> Any:
    """`lengths` as a JAX or NumPy array of an integer dtype (TypeError
    otherwise); NumPy ones stay NumPy, hence concrete, even under jit."""
    if hasattr(lengths, "detach"):  # a torch tensor, as torch's users hold
        lengths = lengths.detach().cpu().numpy()
    if not isinstance(lengths, jax.Array):
        lengths = np.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(
            f"`lengths` must have an integer dtype (one length "
            f"per sequence), got {describe(lengths)}."
        )
    return lengths


def pad_packed(y: jax.Array, steps: int | None, time_major: bool) -> jax.Array:
    """`y` cut or zero-padded to `steps` time steps, as pad_packed_sequence
    returns it; `y` itself when `steps` is None."""
    axis = 0 if time_major else 1
    if steps is None or steps == y.shape[axis]:
        return y
    if steps < y.shape[axis]:
        return jax.lax.slice_in_dim(y, 0, steps, axis=axis)
    widths = [(0, 0)] * y.ndim
    widths[axis] = (0, steps - y.shape[axis])
    return jnp.pad(y, widths)


def _with_states(layer: Any) -> Any:
    """`layer`, returning whole sequences and final states."""
    if isinstance(layer, Bidirectional):
        return dataclasses.replace(
            layer,
            layer=_with_states(layer.layer),
            backward_layer=_with_states(layer.backward_layer),
        )
    # Zero outputs at masked steps: pad_packed_sequence's padding.
    return dataclasses.replace(
        layer,
        return_sequences=True,
        return_state=True,
        stateful=False,
        zero_output_for_mask=True,
    )


def call_one(
    layer: Any,
    cell: Any,
    params: Any,
    inputs: jax.Array,
    initial: list[jax.Array] | None,
    mask: jax.Array | None,
) -> tuple[jax.Array, list]:
    """Runs a non-stack layer; returns (outputs, [h_n] or [h_n, c_n])."""
    per_slot = 2 if isinstance(cell, LSTMCell) else 1
    keras_state = None
    if initial is not None:
        # Keras orders states by cell (and direction), then h before c.
        keras_state = [
            state[i] for i in range(initial[0].shape[0]) for state in initial
        ]
    output, *states = _with_states(layer)(
        params, inputs, mask=mask, initial_state=keras_state
    )
    return output, [jnp.stack(states[s::per_slot]) for s in range(per_slot)]


def as_torch_state(states: list[jax.Array]) -> Any:
    """``h_n``, or ``(h_n, c_n)`` for an LSTM, as torch returns them."""
    return states[0] if len(states) == 1 else tuple(states)
