"""PyTorch ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` state dicts <-> jaxrnn params.

Which jaxrnn structure stands for which torch module; `layer_from_torch`
builds it from the module (H is ``hidden_size``, ``tm`` is
``time_major=not batch_first``, ``LSTM`` stands for ``GRU`` and ``SimpleRNN``
too, the latter with ``activation=nonlinearity``):

| torch | jaxrnn |
| --- | --- |
| one layer | ``LSTM(H, return_sequences=True, time_major=tm)`` |
| ``num_layers=L`` | ``RNN([LSTMCell(H)] * L, return_sequences=True, time_major=tm)``, params a list of L dicts |
| ``bidirectional`` | ``Bidirectional(LSTM(H, ...))``, params ``{'forward': ..., 'backward': ...}`` |
| ``bidirectional``, ``L`` | ``TorchStack([Bidirectional(LSTM(H, ...))] * L)``, params a list of L such dicts |

Stacked cells advance every layer within a time step where torch runs each
layer over the whole sequence first; without dropout the two compute the same
numbers. Bidirectional layers cannot be stacked per step, since torch feeds
each layer both directions' outputs, hence `TorchStack`. `from_torch` and
`to_torch` convert the weights of any of these; `call_like_torch` runs one
with torch's call convention: ``output, h_n`` (LSTM: ``output, (h_n, c_n)``)
with states `(num_layers * num_directions, B, H)`. Given ``lengths``, both
compute what torch computes on ``pack_padded_sequence(x, lengths,
enforce_sorted=False)`` and return the output as ``pad_packed_sequence``
does: a right-padded mask keeps each row's states at its last valid step,
so the backward direction starts at each row's own last step, and outputs
past each length are zeros.

The weights: torch's ``weight_ih_l{k}{_reverse}`` `(G*H, D)` is the transposed
``kernel`` `(D, G*H)` and ``weight_hh`` `(G*H, H)` the transposed
``recurrent_kernel`` `(H, G*H)`. LSTM gates (i, f, g, o) are Keras' (i, f, c,
o). torch's GRU is Keras' ``reset_after=True`` GRU with gates (r, z, n) where
Keras has (z, r, h); ``bias_ih`` is bias row 0, ``bias_hh`` row 1 (both
reordered). LSTM and RNN add two biases where Keras has one: `from_torch`
sums them, `to_torch` writes the sum to ``bias_ih`` and zeros to
``bias_hh``.

Not reproduced: torch's dropout between layers (it acts only in training;
eval mode is matched) and LSTM's ``proj_size`` (rejected). Torch is not
imported here; state dict values may be torch tensors or NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxrnn._validation import check_params
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.interop._torch_call import (
    as_torch_state,
    call_one,
    input_batch_shape,
    packed_mask,
    pad_packed,
    state_arrays,
)
from jaxrnn.interop._torch_cells import (
    cell_from_torch,
    cell_to_torch,
    name_suffix,
)
from jaxrnn.interop._torch_state_dict import (
    check_shapes,
    expected_names,
    float_dtype,
    numpy_state,
    under_prefix,
)
from jaxrnn.interop.torch_layers import (
    TorchStack,
    check_list,
    is_time_major,
    layer_from_torch,
    layer_name,
    slot_count,
    torch_structure,
)
from jaxrnn.layers.bidirectional import Bidirectional

__all__ = [
    "TorchStack",
    "call_like_torch",
    "from_torch",
    "layer_from_torch",
    "to_torch",
]


def from_torch(
    state_dict: Mapping[str, Any],
    layer: Any,
    *,
    prefix: str = "",
    dtype: Any = None,
) -> Any:
    """Converts a torch RNN, LSTM or GRU state dict into `layer`'s params.

    Args:
      state_dict: ``module.state_dict()``: names such as
        ``'weight_ih_l1_reverse'`` to torch tensors or NumPy arrays.
      layer: the matching jaxrnn layer, as `layer_from_torch` builds it (any
        ``merge_mode``; ``return_sequences`` and the like do not matter).
      prefix: the recurrent module's path in a whole model's state dict,
        e.g. ``'lstm.'`` for ``'lstm.weight_ih_l0'``; only the names under
        it are read (the rest of the model is ignored), without it.
      dtype: the params' float dtype (NumPy's, JAX's or torch's), e.g.
        ``jnp.float32`` to train in float32 from a half-precision
        checkpoint (each array is cast before the biases are summed, so
        nothing is rounded to half on the way); None keeps the state
        dict's.

    Returns:
      Params for `layer` as JAX arrays of `dtype` or the state dict's float
      dtype (float64 only with ``jax_enable_x64``; bfloat16 and float16
      kept), in Keras' layout: torch's two LSTM or RNN biases summed into
      one ``bias`` (in float32 at least, then rounded once), GRU gates
      reordered to Keras' (z, r, h) with ``bias`` (2, 3H).

    Raises:
      TypeError: `layer` has no torch counterpart, `prefix` is not a
        string, `dtype` is not a float dtype, or a value is not a floating
        array (the message names it).
      ValueError: the state dict has missing or unexpected names (the
        message suggests a `prefix` that would fit), or arrays whose shapes
        do not fit `layer` (the message names the array).

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> state = {"weight_ih_l0": rng.normal(size=(4, 3)),
      ...          "weight_hh_l0": rng.normal(size=(4, 4)),
      ...          "bias_ih_l0": rng.normal(size=4),
      ...          "bias_hh_l0": rng.normal(size=4)}
      >>> layer = layer_from_torch({"mode": "RNN_RELU", "hidden_size": 4})
      >>> params = from_torch(state, layer)
      >>> params["kernel"].shape, params["bias"].shape
      ((3, 4), (4,))
    """
    structure, owner = torch_structure(layer), layer_name(layer)
    target = float_dtype(dtype)
    selected = under_prefix(state_dict, prefix, expected_names(structure))
    arrays = numpy_state(selected, prefix, structure, owner)
    if target is not None:
        arrays = {name: a.astype(target) for name, a in arrays.items()}
    input_dim, per_layer = None, []
    for k, cells in enumerate(structure):
        per_direction = []
        for d, cell in enumerate(cells):
            suffix = name_suffix(k, d)
            check_shapes(arrays, suffix, cell, input_dim, owner)
            input_dim = arrays["weight_ih" + suffix].shape[1]
            per_direction.append(cell_from_torch(arrays, suffix, cell))
        per_layer.append(per_direction)
        input_dim = cells[0].units * len(cells)
    return _join_params(layer, per_layer)


def to_torch(params: Any, layer: Any) -> dict[str, np.ndarray]:
    """Converts `layer`'s params into a torch RNN, LSTM or GRU state dict.

    Args:
      params: `layer`'s params (from ``init`` or `from_torch`).
      layer: a layer with a torch counterpart, as `layer_from_torch` builds.

    Returns:
      Torch's names in ``state_dict()`` order to NumPy arrays, ready for
      ``module.load_state_dict({k: torch.from_numpy(v) for k, v in ...})``.
      LSTM and RNN put the whole bias in ``bias_ih`` and zeros in
      ``bias_hh`` (their sum is what matters). Arrays keep the params'
      dtype; bfloat16 ones are ``ml_dtypes.bfloat16``, which
      ``torch.from_numpy`` refuses: load them with
      ``torch.from_numpy(v.astype(np.float32)).bfloat16()`` (exact).

    Raises:
      TypeError: `layer` has no torch counterpart, or `params` is not its
        params' structure.
      ValueError: `params` has missing, unexpected or misshapen arrays.

    Example:
      >>> import jax
      >>> layer = layer_from_torch({"mode": "GRU", "hidden_size": 4})
      >>> params = layer.init(jax.random.key(0), (None, None, 3))
      >>> [(name, a.shape) for name, a in to_torch(params, layer).items()]
      [('weight_ih_l0', (12, 3)), ('weight_hh_l0', (12, 4)),
       ('bias_ih_l0', (12,)), ('bias_hh_l0', (12,))]
    """
    structure = torch_structure(layer)
    per_layer = _split_params(layer, params)
    state, input_dim = {}, None
    for k, (cells, per_direction) in enumerate(zip(structure, per_layer)):
        for d, (cell, p) in enumerate(zip(cells, per_direction)):
            if input_dim is None:
                input_dim = _kernel_rows(p)
            where = (
                f"{type(cell).__name__} params (torch layer {k}"
                f"{', reverse' if d else ''}) of {layer_name(layer)}"
            )
            check_params(where, p, cell.param_shapes(input_dim))
            state.update(cell_to_torch(p, cell, name_suffix(k, d)))
        input_dim = cells[0].units * len(cells)
    return state


def call_like_torch(
    layer: Any,
    params: Any,
    inputs: jax.Array,
    initial_state: Any = None,
    *,
    lengths: Any = None,
    total_length: int | None = None,
) -> tuple[jax.Array, Any]:
    """Runs `layer` and returns what the matching torch module returns.

    Args:
      layer: a layer with a torch counterpart (see `layer_from_torch`); its
        ``return_sequences`` and ``return_state`` are overridden, since torch
        returns every output and the final states.
      params: `layer`'s params.
      inputs: (B, T, D), (T, B, D) when the layer is ``time_major``, or
        (T, D).
      initial_state: torch's ``h_0`` (``(h_0, c_0)`` for LSTM), each
        `(num_layers * num_directions, B, H)`, or (..., H) unbatched; zeros
        when None.
      lengths: integer (B,) (a NumPy, JAX or torch array, or a list), each
        in [1, T], in the batch's own order: run as torch runs
        ``pack_padded_sequence(inputs, lengths, enforce_sorted=False)``
        (sorted or not, the results are the same). Each row's states stop at
        its last valid step, the backward direction starts there, and
        outputs past it are zeros. Batched inputs only. Concrete lengths are
        checked; traced ones (under `jax.jit`) are not, and a length above T
        then acts as T.
      total_length: with `lengths`, the output's time size, as
        ``pad_packed_sequence(..., total_length=)``: at least the longest
        length (checked when the lengths are concrete), padded with zeros
        past T. When None, the longest length, as torch returns; traced
        lengths have none to read, so under `jax.jit` pass it (T, say).

    Returns:
      ``(output, h_n)`` or, for LSTM, ``(output, (h_n, c_n))``: output
      `(B, T, num_directions * H)` in the inputs' layout (with `lengths`,
      T is `total_length` or the longest length), states shaped like
      `initial_state`. States keep jaxrnn's carry dtype: float32 zeros
      start them when `initial_state` is None, even under half-precision
      params, where torch's come back in the module's dtype; a
      half-precision `initial_state` keeps them in half precision.

    Raises:
      TypeError: `layer` has no torch counterpart, `initial_state` is not
        a pair for LSTM (or a pair for the others), or `lengths` is not of
        an integer dtype.
      ValueError: a `Bidirectional` layer whose ``merge_mode`` is not
        ``'concat'``, states of the wrong shape, `lengths` of the wrong
        shape or outside [1, T], `total_length` below the longest length,
        or traced `lengths` without `total_length`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = layer_from_torch({"mode": "LSTM", "hidden_size": 4,
      ...                           "num_layers": 2})
      >>> params = layer.init(jax.random.key(0), (None, None, 3))
      >>> y, (h_n, c_n) = call_like_torch(layer, params, jnp.ones((5, 2, 3)))
      >>> y.shape, h_n.shape
      ((5, 2, 4), (2, 2, 4))
      >>> # Packed sequences: rows of 5 and 3 valid steps.
      >>> y, (h_n, c_n) = call_like_torch(layer, params, jnp.ones((5, 2, 3)),
      ...                                 lengths=jnp.array([5, 3]))
      >>> float(abs(y[3:, 1]).max())
      0.0
    """
    if isinstance(layer, TorchStack):
        return layer(
            params,
            inputs,
            initial_state=initial_state,
            lengths=lengths,
            total_length=total_length,
        )
    structure = torch_structure(layer)
    if isinstance(layer, Bidirectional) and layer.merge_mode != "concat":
        raise ValueError(
            "torch concatenates both directions: the "
            "Bidirectional layer needs merge_mode='concat', got "
            f"{layer.merge_mode!r}."
        )
    cell, time_major = structure[0][0], is_time_major(layer)
    initial = state_arrays(
        initial_state,
        cell,
        slot_count(layer),
        input_batch_shape(inputs, time_major),
    )
    mask, steps = packed_mask(lengths, total_length, inputs, time_major)
    y, states = call_one(layer, cell, params, inputs, initial, mask)
    return pad_packed(y, steps, time_major), as_torch_state(states)


# Params: one dict per torch layer and direction <-> the layer's structure.


def _split_params(layer: Any, params: Any) -> list[list[Any]]:
    """`layer`'s params as one dict per torch layer and direction, in
    `torch_structure`'s order; TypeError unless they have its nesting."""
    if isinstance(layer, TorchStack):
        check_list("TorchStack params", params, len(layer.layers))
        return [
            cells
            for sub, p in zip(layer.layers, params)
            for cells in _split_params(sub, p)
        ]
    if isinstance(layer, Bidirectional):
        if not isinstance(params, Mapping) or set(params) != {
            "forward",
            "backward",
        }:
            got = (
                sorted(params)
                if isinstance(params, Mapping)
                else type(params).__name__
            )
            raise TypeError(
                f"{layer_name(layer)} params must be a dict with keys "
                f"['backward', 'forward'], got {got}."
            )
        return [[params["forward"], params["backward"]]]
    if isinstance(layer.cell, StackedCells):
        check_list(
            f"{layer_name(layer)} params", params, len(layer.cell.cells)
        )
        return [[p] for p in params]
    return [[params]]


def _join_params(layer: Any, per_layer: list[list[Any]]) -> Any:
    """The inverse of `_split_params`: `layer`'s params from one dict per
    torch layer and direction."""
    if isinstance(layer, TorchStack):
        return [
            _join_params(sub, [cells])
            for sub, cells in zip(layer.layers, per_layer)
        ]
    if isinstance(layer, Bidirectional):
        forward, backward = per_layer[0]
        return {"forward": forward, "backward": backward}
    if isinstance(layer.cell, StackedCells):
        return [p for (p,) in per_layer]
    return per_layer[0][0]


def _kernel_rows(params: Any) -> int | None:
    """D from the first cell's kernel `(D, G*H)`; None lets the check
    fail."""
    if not isinstance(params, Mapping) or "kernel" not in params:
        return None
    shape = np.shape(params["kernel"])
    return shape[0] if len(shape) == 2 else None
