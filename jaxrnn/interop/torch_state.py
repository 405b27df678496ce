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

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import activations
from jaxrnn._validation import (
    check_bool,
    check_params,
    check_positive_int,
    check_shape,
    describe,
)
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.interop import _gates
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.recurrent import GRU, LSTM, RNN, RecurrentLayer, SimpleRNN

# Cell type -> (torch module, jaxrnn layer).
_COUNTERPARTS = {
    SimpleRNNCell: ("nn.RNN", SimpleRNN),
    LSTMCell: ("nn.LSTM", LSTM),
    GRUCell: ("nn.GRU", GRU),
}
# torch's `mode` -> (cell type, SimpleRNN activation).
_MODES = {
    "RNN_TANH": (SimpleRNNCell, "tanh"),
    "RNN_RELU": (SimpleRNNCell, "relu"),
    "LSTM": (LSTMCell, None),
    "GRU": (GRUCell, None),
}
_CONFIG_DEFAULTS = {
    "input_size": None,
    "num_layers": 1,
    "bias": True,
    "batch_first": False,
    "bidirectional": False,
    "nonlinearity": None,
    "proj_size": 0,
}
_KEY = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?")


@dataclasses.dataclass(frozen=True, init=False)
class TorchStack:
    """torch's multi-layer RNN run layer by layer (for bidirectional ones).

    Each layer runs over the whole sequence and hands its outputs (both
    directions concatenated) to the next, as torch does. Params are a list
    with one entry per layer. Calls take and return states in torch's layout.

    Args:
      layers: a non-empty sequence of `Bidirectional` layers (or plain
        `LSTM`, `GRU`, `SimpleRNN` layers), each over one built-in layer with
        ``return_sequences=True``, ``merge_mode='concat'``; all alike but for
        the input size, as torch's layers are.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import GRU, Bidirectional
      >>> stack = TorchStack([Bidirectional(GRU(4, return_sequences=True))] * 2)
      >>> params = stack.init(jax.random.key(0), (None, None, 3))
      >>> y, h_n = stack(params, jnp.ones((2, 5, 3)))
      >>> y.shape, h_n.shape
      ((2, 5, 8), (4, 2, 4))
    """

    layers: tuple[Any, ...]

    def __init__(self, layers: Sequence[Any]):
        if isinstance(layers, (str, bytes)) or not isinstance(
            layers, Sequence
        ):
            raise TypeError(
                "`layers` must be a list of layers, got "
                f"{type(layers).__name__}."
            )
        if len(layers) == 0:
            raise ValueError("`layers` must hold at least one layer, got [].")
        for i, layer in enumerate(layers):
            _check_stack_entry(f"layers[{i}]", layer)
        if len({_time_major(layer) for layer in layers}) > 1:
            raise ValueError(
                "`layers` must agree on `time_major`, got "
                f"{[_time_major(layer) for layer in layers]}."
            )
        object.__setattr__(self, "layers", tuple(layers))
        _torch_layers(self)  # one hidden size, cell type and bias for all

    @property
    def time_major(self) -> bool:
        """Whether inputs and outputs are (T, B, ...) (torch's
        ``batch_first=False``)."""
        return _time_major(self.layers[0])

    def init(self, key: jax.Array, input_shape: Sequence[Any]) -> list[Any]:
        """Returns a list with each layer's params; `input_shape` is the first
        layer's, (B, T, D) or (T, B, D), None for unknown sizes."""
        shape = tuple(input_shape)
        params = []
        for layer, layer_key in zip(
            self.layers, jax.random.split(key, len(self.layers))
        ):
            params.append(layer.init(layer_key, shape))
            shape = shape[:-1] + (_output_size(layer),)
        return params

    def __call__(
        self,
        params: Sequence[Any],
        inputs: jax.Array,
        *,
        initial_state: Any = None,
        lengths: Any = None,
        total_length: int | None = None,
    ) -> tuple[jax.Array, Any]:
        """Runs every layer; returns what torch's module returns.

        Args:
          params: the list from `init` or `from_torch`.
          inputs: (B, T, D), (T, B, D) with ``time_major``, or (T, D).
          initial_state: torch's ``h_0`` (``(h_0, c_0)`` for LSTM), each
            `(num_layers * num_directions, B, H)` or (..., H) unbatched;
            zeros when None.
          lengths: integer (B,), each in [1, T]: run as torch runs
            ``pack_padded_sequence(inputs, lengths, enforce_sorted=False)``
            (see `call_like_torch`).
          total_length: with `lengths`, the output's time size, as
            ``pad_packed_sequence``'s; the longest length when None.

        Returns:
          ``(output, h_n)`` or, for LSTM, ``(output, (h_n, c_n))``: output
          `(B, T, num_directions * H)` in the inputs' layout, states shaped
          like `initial_state`.
        """
        _check_list("TorchStack params", params, len(self.layers))
        cell = _torch_layers(self)[0][0]
        slots = _slot_count(self)
        batch_shape = _batch_shape(inputs, self.time_major)
        initial = _state_arrays(initial_state, cell, slots, batch_shape)
        mask, steps = _packed_mask(
            lengths, total_length, inputs, self.time_major
        )
        per_layer = slots // len(self.layers)
        x, states = inputs, []
        for k, (layer, p) in enumerate(zip(self.layers, params)):
            hx = (
                None
                if initial is None
                else [a[k * per_layer : (k + 1) * per_layer] for a in initial]
            )
            x, layer_states = _call_one(layer, cell, p, x, hx, mask)
            states.append(layer_states)
        merged = [jnp.concatenate(parts) for parts in zip(*states)]
        return _pad_packed(x, steps, self.time_major), _torch_state(merged)


def layer_from_torch(module_or_config: Any) -> Any:
    """Builds the jaxrnn layer that computes what a torch RNN module computes.

    See the table at the top of this module for what comes out.

    Args:
      module_or_config: a torch ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``, or a
        dict with torch's constructor arguments and ``mode``: ``'LSTM'``,
        ``'GRU'``, ``'RNN_TANH'``, ``'RNN_RELU'`` or ``'RNN'`` (then
        ``nonlinearity`` picks tanh or relu). Read: ``mode``, ``hidden_size``,
        ``num_layers``, ``bias``, ``batch_first``, ``bidirectional``,
        ``nonlinearity``; ``input_size`` is checked but not needed (jaxrnn
        layers learn D at ``init``); ``proj_size`` must be 0. A module's
        ``dropout`` acts only in training and is not reproduced.

    Returns:
      A `jaxrnn.LSTM`, `GRU` or `SimpleRNN` layer, an `RNN` of stacked
      cells, a `Bidirectional` layer or a `TorchStack`; all return sequences.

    Raises:
      TypeError: for anything that is neither such a module nor a dict.
      ValueError: for unknown keys or values torch would not accept.

    Example:
      >>> layer = layer_from_torch({"mode": "LSTM", "input_size": 3,
      ...                           "hidden_size": 4, "num_layers": 2,
      ...                           "batch_first": True})
      >>> type(layer).__name__, len(layer.cell.cells), layer.time_major
      ('RNN', 2, False)
    """
    config = _torch_config(module_or_config)
    cell_type, activation = _MODES[config["mode"]]
    extra = {} if activation is None else {"activation": activation}
    units, time_major = config["hidden_size"], not config["batch_first"]
    num_layers = config["num_layers"]
    if num_layers > 1 and not config["bidirectional"]:
        cells = [
            cell_type(units, use_bias=config["bias"], **extra)
            for _ in range(num_layers)
        ]
        return RNN(cells, return_sequences=True, time_major=time_major)
    layer = _COUNTERPARTS[cell_type][1](
        units,
        use_bias=config["bias"],
        return_sequences=True,
        time_major=time_major,
        **extra,
    )
    if not config["bidirectional"]:
        return layer
    layer = Bidirectional(layer, merge_mode="concat")
    return layer if num_layers == 1 else TorchStack([layer] * num_layers)


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
    structure = _torch_layers(layer)
    target = _float_dtype(dtype)
    selected = _under_prefix(state_dict, prefix, _expected_names(structure))
    arrays = _numpy_state(selected, prefix, structure, layer)
    if target is not None:
        arrays = {name: a.astype(target) for name, a in arrays.items()}
    input_dim, per_layer = None, []
    for k, cells in enumerate(structure):
        per_direction = []
        for d, cell in enumerate(cells):
            suffix = _suffix(k, d)
            _check_torch_shapes(arrays, suffix, cell, input_dim, layer)
            input_dim = arrays["weight_ih" + suffix].shape[1]
            per_direction.append(_cell_from_torch(arrays, suffix, cell))
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
    structure = _torch_layers(layer)
    per_layer = _split_params(layer, params)
    state, input_dim = {}, None
    for k, (cells, per_direction) in enumerate(zip(structure, per_layer)):
        for d, (cell, p) in enumerate(zip(cells, per_direction)):
            if input_dim is None:
                input_dim = _kernel_rows(p)
            where = (
                f"{type(cell).__name__} params (torch layer {k}"
                f"{', reverse' if d else ''}) of {_name(layer)}"
            )
            check_params(where, p, cell.param_shapes(input_dim))
            state.update(_cell_to_torch(p, cell, _suffix(k, d)))
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
    structure = _torch_layers(layer)
    if isinstance(layer, Bidirectional) and layer.merge_mode != "concat":
        raise ValueError(
            "torch concatenates both directions: the "
            "Bidirectional layer needs merge_mode='concat', got "
            f"{layer.merge_mode!r}."
        )
    cell, time_major = structure[0][0], _time_major(layer)
    initial = _state_arrays(
        initial_state,
        cell,
        _slot_count(layer),
        _batch_shape(inputs, time_major),
    )
    mask, steps = _packed_mask(lengths, total_length, inputs, time_major)
    y, states = _call_one(layer, cell, params, inputs, initial, mask)
    return _pad_packed(y, steps, time_major), _torch_state(states)


# The structure: which cells stand for which torch layer and direction.


def _torch_layers(layer: Any) -> list[list[Any]]:
    """The cells of each torch layer, one per direction; raises unless
    `layer` has a torch counterpart."""
    if isinstance(layer, TorchStack):
        structure = [
            cells for sub in layer.layers for cells in _torch_layers(sub)
        ]
    elif isinstance(layer, Bidirectional):
        forward, backward = layer.forward_layer, layer.backward_layer
        for part in (forward, backward):
            if isinstance(part.cell, StackedCells):
                raise ValueError(
                    f"{_name(layer)} runs each direction through stacked "
                    "cells; torch runs layer by layer, each layer seeing "
                    "both directions: use TorchStack([Bidirectional(...)] "
                    "* num_layers) (see layer_from_torch)."
                )
        _check_forward(forward, layer)
        structure = [[forward.cell, backward.cell]]
    elif isinstance(layer, RecurrentLayer):
        _check_forward(layer, layer)
        cells = (
            layer.cell.cells
            if isinstance(layer.cell, StackedCells)
            else (layer.cell,)
        )
        structure = [[cell] for cell in cells]
    else:
        raise TypeError(
            f"`layer` must be a jaxrnn layer with a torch "
            f"counterpart (see layer_from_torch), got "
            f"{type(layer).__name__}."
        )
    _check_cells(structure, layer)
    return structure


def _check_forward(layer: Any, owner: Any) -> None:
    if layer.go_backwards:
        raise ValueError(
            f"{_name(owner)} has a forward layer with "
            "go_backwards=True; torch's forward direction reads "
            "the sequence in order."
        )


def _check_cells(structure: list[list[Any]], layer: Any) -> None:
    """Each cell must compute what torch does, and all alike (torch's layers
    share hidden_size, bias and nonlinearity)."""
    signatures = set()
    for cells in structure:
        for cell in cells:
            _check_cell(cell, layer)
            signatures.add(
                (
                    type(cell).__name__,
                    cell.units,
                    cell.use_bias,
                    activations.get(cell.activation),
                )
            )
    if len({len(cells) for cells in structure}) > 1 or len(signatures) > 1:
        raise ValueError(
            f"{_name(layer)} mixes cells or directions ("
            f"{sorted((s[:3] for s in signatures), key=str)}); a torch "
            "module's layers share one cell type, hidden_size, bias and "
            "direction count."
        )


def _check_cell(cell: Any, layer: Any) -> None:
    if type(cell) not in _COUNTERPARTS:
        raise TypeError(
            f"{_name(layer)} holds a {type(cell).__name__}; only "
            "SimpleRNNCell (nn.RNN), LSTMCell (nn.LSTM) and "
            "GRUCell (nn.GRU) have torch counterparts."
        )
    torch_name = _COUNTERPARTS[type(cell)][0]
    allowed = (
        ("tanh", "relu") if isinstance(cell, SimpleRNNCell) else ("tanh",)
    )
    if not any(
        activations.get(cell.activation) is activations.get(name)
        for name in allowed
    ):
        raise ValueError(
            f"{torch_name} uses activation {' or '.join(allowed)}"
            f", got {cell.activation!r} in {_name(layer)}."
        )
    recurrent = getattr(cell, "recurrent_activation", "sigmoid")
    if activations.get(recurrent) is not activations.get("sigmoid"):
        raise ValueError(
            f"{torch_name} uses recurrent_activation 'sigmoid', "
            f"got {recurrent!r} in {_name(layer)}."
        )
    if isinstance(cell, GRUCell) and not cell.reset_after:
        raise ValueError(
            f"nn.GRU applies the reset gate after the recurrent "
            f"matmul, so {_name(layer)} needs reset_after=True."
        )


def _check_stack_entry(name: str, layer: Any) -> None:
    if isinstance(layer, TorchStack) or len(_torch_layers(layer)) != 1:
        raise ValueError(
            f"`{name}` must stand for one torch layer (an LSTM, "
            "GRU or SimpleRNN layer, or a Bidirectional one), "
            f"got {_name(layer)}."
        )
    flags = layer.layer if isinstance(layer, Bidirectional) else layer
    wanted = {
        "return_sequences": True,
        "return_state": False,
        "stateful": False,
    }
    for flag, value in wanted.items():
        if getattr(flags, flag) != value:
            raise ValueError(
                f"`{name}` must have {flag}={value}, as torch "
                f"passes whole sequences on, got "
                f"{getattr(flags, flag)}."
            )
    if isinstance(layer, Bidirectional) and layer.merge_mode != "concat":
        raise ValueError(
            f"`{name}` must have merge_mode='concat' (torch "
            "concatenates both directions), got "
            f"{layer.merge_mode!r}."
        )


def _name(layer: Any) -> str:
    """A short description for messages: ``Bidirectional(LSTM(units=8))``."""
    if isinstance(layer, TorchStack):
        first, count = _name(layer.layers[0]), len(layer.layers)
        return f"TorchStack([{first}, ...] x {count})"
    if isinstance(layer, Bidirectional):
        return f"Bidirectional({_name(layer.layer)})"
    cell = getattr(layer, "cell", None)
    if isinstance(cell, StackedCells):
        inner = ", ".join(_cell_name(c) for c in cell.cells)
        return f"{type(layer).__name__}([{inner}])"
    if isinstance(layer, RNN):
        return f"RNN({_cell_name(cell)})"
    return f"{type(layer).__name__}(units={getattr(cell, 'units', '?')})"


def _cell_name(cell: Any) -> str:
    return f"{type(cell).__name__}(units={getattr(cell, 'units', '?')})"


def _time_major(layer: Any) -> bool:
    inner = layer.layer if isinstance(layer, Bidirectional) else layer
    return inner.time_major


def _output_size(layer: Any) -> int:
    structure = _torch_layers(layer)
    return structure[-1][0].units * len(structure[-1])


def _slot_count(layer: Any) -> int:
    """`num_layers * num_directions`: the leading size of torch's states."""
    return sum(len(cells) for cells in _torch_layers(layer))


# Params: one dict per torch layer and direction <-> the layer's structure.


def _check_list(name: str, value: Any, length: int) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != length:
        got = len(value) if isinstance(value, (list, tuple)) else None
        raise TypeError(
            f"{name} must be a list of {length} entries (one per "
            f"layer), got {type(value).__name__}"
            f"{'' if got is None else f' of length {got}'}."
        )


def _split_params(layer: Any, params: Any) -> list[list[Any]]:
    if isinstance(layer, TorchStack):
        _check_list("TorchStack params", params, len(layer.layers))
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
                f"{_name(layer)} params must be a dict with keys "
                f"['backward', 'forward'], got {got}."
            )
        return [[params["forward"], params["backward"]]]
    if isinstance(layer.cell, StackedCells):
        _check_list(f"{_name(layer)} params", params, len(layer.cell.cells))
        return [[p] for p in params]
    return [[params]]


def _join_params(layer: Any, per_layer: list[list[Any]]) -> Any:
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


# Arrays: torch's names, shapes and gate orders <-> Keras'.


def _under_prefix(
    state_dict: Any, prefix: str, expected: list[str]
) -> Mapping[str, Any]:
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "`state_dict` must be a dict of arrays (a torch "
            "module's state_dict()), got "
            f"{type(state_dict).__name__}."
        )
    if not isinstance(prefix, str):
        raise TypeError(
            f"`prefix` must be a string such as 'lstm.', got "
            f"{type(prefix).__name__}."
        )
    if not prefix:
        return state_dict
    selected = {
        name[len(prefix) :]: value
        for name, value in state_dict.items()
        if isinstance(name, str) and name.startswith(prefix)
    }
    if not selected:
        heads = sorted(
            {
                str(name).rpartition(".")[0] + "."
                for name in state_dict
                if "." in str(name)
            }
        )
        raise ValueError(
            f"No name in `state_dict` starts with `prefix` "
            f"{prefix!r}; its names start with {heads or ['']}."
            f"{_prefix_hint(state_dict, expected, '')}"
        )
    return selected


def _numpy_state(
    state_dict: Mapping[str, Any],
    prefix: str,
    structure: list[list[Any]],
    layer: Any,
) -> dict[str, np.ndarray]:
    # Names first: a whole model's state dict holds integer buffers that
    # are not ours to convert.
    _check_names(state_dict, structure, layer, prefix)
    return {
        name: _float_array(prefix + name, value)
        for name, value in state_dict.items()
    }


def _float_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, maybe on a GPU
        if not value.is_floating_point():
            raise TypeError(
                f"state_dict[{name!r}] must be a floating "
                f"tensor, got dtype {value.dtype}."
            )
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            # NumPy has no bfloat16 of torch's; float32 holds it exactly.
            return value.float().numpy().astype(jnp.bfloat16)
        value = value.numpy()
    array = np.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"state_dict[{name!r}] must be a float array, got "
            f"dtype {array.dtype}."
        )
    return array


def _float_dtype(dtype: Any) -> np.dtype | None:
    """`dtype` as a NumPy float dtype (None stays None); TypeError
    otherwise."""
    if dtype is None:
        return None
    if type(dtype).__module__ == "torch":  # torch.float32 names its kind
        dtype = str(dtype).removeprefix("torch.")
    try:
        target = jnp.dtype(dtype)
    except TypeError:
        target = None
    if target is None or not jnp.issubdtype(target, jnp.floating):
        raise TypeError(
            "`dtype` must be a float dtype such as jnp.float32 "
            f"or 'bfloat16', got {dtype!r}."
        )
    return target


def _expected_names(structure: list[list[Any]]) -> list[str]:
    names = []
    for k, cells in enumerate(structure):
        for d, cell in enumerate(cells):
            kinds = ("weight_ih", "weight_hh") + (
                ("bias_ih", "bias_hh") if cell.use_bias else ()
            )
            names += [kind + _suffix(k, d) for kind in kinds]
    return names


def _describe_names(names: Sequence[str]) -> str:
    """What a set of state dict names says about the torch module."""
    # A whole model's names carry a module path: 'lstm.weight_ih_l0'.
    parsed = [
        m.groups()
        for m in map(
            _KEY.fullmatch,
            (n.rpartition(".")[2] for n in names if isinstance(n, str)),
        )
        if m
    ]
    if not parsed:
        return "no torch RNN weights"
    layers = 1 + max(int(layer) for _, _, layer, _ in parsed)
    return (
        f"num_layers={layers}, "
        f"bidirectional={any(rev for *_, rev in parsed)}, "
        f"bias={any(kind == 'bias' for kind, *_ in parsed)}"
        + (", proj_size>0" if any(m == "hr" for _, m, *_ in parsed) else "")
    )


def _check_names(
    arrays: Mapping[str, Any],
    structure: list[list[Any]],
    layer: Any,
    prefix: str = "",
) -> None:
    expected = _expected_names(structure)
    missing = [prefix + name for name in expected if name not in arrays]
    unexpected = [
        prefix + name for name in arrays if name not in set(expected)
    ]
    if missing or unexpected:
        raise ValueError(
            f"The state dict does not fit {_name(layer)}: missing {missing}, "
            f"unexpected {unexpected}. The state dict has "
            f"{_describe_names(list(arrays))}; the layer stands for "
            f"{_describe_names(expected)}.{_prefix_hint(arrays, expected, prefix)}"
        )


def _prefix_hint(
    arrays: Mapping[str, Any], expected: list[str], prefix: str
) -> str:
    """Advice when the names sit under a module path, as in a whole model's
    state dict (``'lstm.weight_ih_l0'``)."""
    names = {name for name in arrays if isinstance(name, str)}
    found = sorted(
        name[: -len(expected[0])]
        for name in names
        if name.endswith("." + expected[0])
    )
    fits = [p for p in found if all(p + n in names for n in expected)]
    if not fits:
        return ""
    if len(fits) > 1:  # an encoder's and a decoder's LSTM, say
        return (
            " Several modules fit: pass prefix= one of "
            f"{[prefix + fit for fit in fits]}."
        )
    return (
        f" The names sit under {prefix + fits[0]!r}: pass "
        f"prefix={prefix + fits[0]!r}."
    )


def _check_torch_shapes(
    arrays: Mapping[str, np.ndarray],
    suffix: str,
    cell: Any,
    input_dim: int | None,
    layer: Any,
) -> None:
    rows, units = cell.gates * cell.units, cell.units
    expected = {"weight_ih": (rows, input_dim), "weight_hh": (rows, units)}
    if cell.use_bias:
        expected.update(bias_ih=(rows,), bias_hh=(rows,))
    for kind, shape in expected.items():
        name = kind + suffix
        got = np.shape(arrays[name])
        if len(got) != len(shape) or any(
            want not in (None, have) for want, have in zip(shape, got)
        ):
            want = ", ".join(
                "*" if size is None else str(size) for size in shape
            )
            want += "," if len(shape) == 1 else ""
            raise ValueError(
                f"`{name}` must have shape ({want}) for "
                f"{_name(layer)}, got {got}; "
                f"{_guess_module(arrays)}."
            )


def _guess_module(arrays: Mapping[str, np.ndarray]) -> str:
    shape = np.shape(arrays["weight_hh_l0"])  # (G*H, H)
    gates = {1: "nn.RNN", 3: "nn.GRU", 4: "nn.LSTM"}
    if (
        len(shape) == 2
        and shape[1]
        and shape[0] % shape[1] == 0
        and (shape[0] // shape[1] in gates)
    ):
        return (
            f"the state dict looks like an {gates[shape[0] // shape[1]]} "
            f"with hidden_size={shape[1]}"
        )
    return f"weight_hh_l0 {shape} fits no torch RNN module"


def _suffix(layer: int, direction: int) -> str:
    """torch's name ending: ``_l1`` or ``_l1_reverse``."""
    return f"_l{layer}{'_reverse' if direction else ''}"


def _kernel_rows(params: Any) -> int | None:
    """D from the first cell's kernel `(D, G*H)`; None lets the check
    fail."""
    if not isinstance(params, Mapping) or "kernel" not in params:
        return None
    shape = np.shape(params["kernel"])
    return shape[0] if len(shape) == 2 else None


def _reorder_gates(
    arrays: Mapping[str, np.ndarray], cell: Any, src: str, dst: str
) -> dict[str, np.ndarray]:
    """Every array's gate blocks (last axis) from `src`'s order to `dst`'s:
    the GRU's move (torch's r, z, n), the LSTM's stay (_gates.TABLE)."""
    if isinstance(cell, SimpleRNNCell):
        return dict(arrays)  # one block: no order to change
    kind = "gru" if isinstance(cell, GRUCell) else "lstm"
    return {k: _gates.reorder(v, src, dst, kind) for k, v in arrays.items()}


def _cell_from_torch(
    arrays: Mapping[str, np.ndarray], suffix: str, cell: Any
) -> dict[str, jax.Array]:
    params = {
        "kernel": arrays["weight_ih" + suffix].T,  # (D, G*H)
        "recurrent_kernel": arrays["weight_hh" + suffix].T,
    }  # (H, G*H)
    if cell.use_bias:
        bias_ih = arrays["bias_ih" + suffix]
        bias_hh = arrays["bias_hh" + suffix]
        if isinstance(cell, GRUCell):
            params["bias"] = np.stack([bias_ih, bias_hh])  # (2, 3H)
        else:
            # Half-precision biases summed in float32, rounded once.
            wide = np.promote_types(bias_ih.dtype, np.float32)
            params["bias"] = (
                bias_ih.astype(wide) + bias_hh.astype(wide)
            ).astype(bias_ih.dtype)
    params = _reorder_gates(params, cell, "torch", "keras")
    return {k: jnp.asarray(v) for k, v in params.items()}


def _cell_to_torch(
    params: Mapping[str, Any], cell: Any, suffix: str
) -> dict[str, np.ndarray]:
    arrays = _reorder_gates(
        {k: np.asarray(v) for k, v in params.items()}, cell, "keras", "torch"
    )
    state = {
        "weight_ih" + suffix: arrays["kernel"].T,
        "weight_hh" + suffix: arrays["recurrent_kernel"].T,
    }
    if cell.use_bias:
        bias = arrays["bias"]
        if isinstance(cell, GRUCell):
            bias_ih, bias_hh = bias
        else:
            bias_ih, bias_hh = bias, np.zeros_like(bias)
        state.update(
            {"bias_ih" + suffix: bias_ih, "bias_hh" + suffix: bias_hh}
        )
    # Writable copies: torch.from_numpy warns about read-only JAX buffers.
    return {k: np.array(v, order="C") for k, v in state.items()}


# Calls: torch's (num_layers * num_directions, B, H) states <-> Keras' lists.


def _batch_shape(inputs: Any, time_major: bool) -> tuple[int, ...]:
    ndim = np.ndim(inputs)
    if ndim not in (2, 3):
        layout = "(T, B, D)" if time_major else "(B, T, D)"
        raise ValueError(
            f"`inputs` must have shape {layout} or unbatched "
            f"(T, D), got {np.shape(inputs)}."
        )
    return () if ndim == 2 else (np.shape(inputs)[1 if time_major else 0],)


def _state_arrays(
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
            f"{_COUNTERPARTS[type(cell)][0]}, got "
            f"{type(initial_state).__name__}"
            + (f" of length {len(initial_state)}." if is_pair else ".")
        )
    states = list(initial_state) if is_pair else [initial_state]
    for name, state in zip(("h_0", "c_0"), states):
        check_shape(
            f"initial_state {name}", state, (slots, *batch_shape, cell.units)
        )
    return [jnp.asarray(state) for state in states]


def _packed_mask(
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
    if isinstance(lengths, jax.core.Tracer):
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


def _pad_packed(
    y: jax.Array, steps: int | None, time_major: bool
) -> jax.Array:
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


def _call_one(
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


def _torch_state(states: list[jax.Array]) -> Any:
    return states[0] if len(states) == 1 else tuple(states)


def _torch_config(source: Any) -> dict[str, Any]:
    """torch hyperparameters from a module or a dict, validated."""
    if isinstance(source, Mapping):
        allowed = {"mode", "hidden_size", *_CONFIG_DEFAULTS}
        unknown = sorted(set(source) - allowed)
        if unknown or "mode" not in source or "hidden_size" not in source:
            note = (
                " (torch's dropout between layers acts only in training "
                "and is not reproduced)"
                if "dropout" in unknown
                else ""
            )
            raise ValueError(
                "`module_or_config` as a dict needs 'mode' and 'hidden_size' "
                f"and may have {sorted(_CONFIG_DEFAULTS)}; got keys "
                f"{sorted(source)}{note}."
            )
        config = {**_CONFIG_DEFAULTS, **source}
    elif all(
        hasattr(source, name)
        for name in ("mode", "hidden_size", "num_layers", "batch_first")
    ):
        config = {
            name: getattr(source, name, default)
            for name, default in {
                "mode": None,
                "hidden_size": None,
                **_CONFIG_DEFAULTS,
            }.items()
        }
    else:
        raise TypeError(
            "`module_or_config` must be a torch nn.RNN, nn.LSTM "
            "or nn.GRU or a dict of their arguments, got "
            f"{type(source).__name__}."
        )
    config["mode"] = _torch_mode(config["mode"], config["nonlinearity"])
    for name in ("hidden_size", "num_layers"):
        check_positive_int(name, config[name])
    if config["input_size"] is not None:
        check_positive_int("input_size", config["input_size"])
    for name in ("bias", "batch_first", "bidirectional"):
        check_bool(name, config[name])
    if config["proj_size"] != 0:
        raise ValueError(
            "LSTM's `proj_size` has no jaxrnn counterpart; it "
            f"must be 0, got {config['proj_size']!r}."
        )
    return config


def _torch_mode(mode: Any, nonlinearity: Any) -> str:
    for name, value in (("mode", mode), ("nonlinearity", nonlinearity)):
        if not isinstance(value, str) and not (
            name == "nonlinearity" and value is None
        ):
            raise TypeError(
                f"`{name}` must be a string, got {type(value).__name__}."
            )
    mode = mode.upper()
    if mode == "RNN":
        mode = f"RNN_{(nonlinearity or 'tanh').upper()}"
    if mode not in _MODES:
        raise ValueError(
            f"`mode` must be one of {sorted(_MODES) + ['RNN']}"
            f" (with nonlinearity 'tanh' or 'relu'), got "
            f"{mode!r}."
        )
    implied = _MODES[mode][1]
    if nonlinearity is not None and nonlinearity != implied:
        raise ValueError(
            f"`nonlinearity` must be {implied!r} for mode "
            f"{mode!r}, got {nonlinearity!r}."
        )
    return mode
