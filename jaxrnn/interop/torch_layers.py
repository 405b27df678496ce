"""Which jaxrnn layer stands for which torch RNN module.

`layer_from_torch` builds the layer from a torch module or its arguments,
and `TorchStack` runs bidirectional layers one after the other as torch
does. `torch_structure` reads any such layer back as torch sees it: the
cells of each torch layer, one per direction, refusing a layer that
torch cannot express; the converters and `call_like_torch` walk it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import activations
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.interop._peers import cell_label
from jaxrnn.interop._torch_call import (
    as_torch_state,
    call_one,
    input_batch_shape,
    packed_mask,
    pad_packed,
    state_arrays,
)
from jaxrnn.interop._torch_cells import COUNTERPARTS, check_cell
from jaxrnn.interop._torch_config import MODES, read_config
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.rnn import RNN, RecurrentLayer


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
        if len({is_time_major(layer) for layer in layers}) > 1:
            raise ValueError(
                "`layers` must agree on `time_major`, got "
                f"{[is_time_major(layer) for layer in layers]}."
            )
        object.__setattr__(self, "layers", tuple(layers))
        torch_structure(self)  # one hidden size, cell type and bias for all

    @property
    def time_major(self) -> bool:
        """Whether inputs and outputs are (T, B, ...) (torch's
        ``batch_first=False``)."""
        return is_time_major(self.layers[0])

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
        check_list("TorchStack params", params, len(self.layers))
        cell = torch_structure(self)[0][0]
        slots = slot_count(self)
        batch_shape = input_batch_shape(inputs, self.time_major)
        initial = state_arrays(initial_state, cell, slots, batch_shape)
        mask, steps = packed_mask(
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
            x, layer_states = call_one(layer, cell, p, x, hx, mask)
            states.append(layer_states)
        merged = [jnp.concatenate(parts) for parts in zip(*states)]
        return pad_packed(x, steps, self.time_major), as_torch_state(merged)


def layer_from_torch(module_or_config: Any) -> Any:
    """Builds the jaxrnn layer that computes what a torch RNN module computes.

    The table that opens `jaxrnn.interop.torch_state` (and the PyTorch
    section of the API pages) says what comes out.

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
    config = read_config(module_or_config)
    cell_type, activation = MODES[config["mode"]]
    extra = {} if activation is None else {"activation": activation}
    units, time_major = config["hidden_size"], not config["batch_first"]
    num_layers = config["num_layers"]
    if num_layers > 1 and not config["bidirectional"]:
        cells = [
            cell_type(units, use_bias=config["bias"], **extra)
            for _ in range(num_layers)
        ]
        return RNN(cells, return_sequences=True, time_major=time_major)
    layer = COUNTERPARTS[cell_type][1](
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


def torch_structure(layer: Any) -> list[list[Any]]:
    """The cells of each torch layer, one per direction; raises unless
    `layer` has a torch counterpart."""
    if isinstance(layer, TorchStack):
        structure = [
            cells for sub in layer.layers for cells in torch_structure(sub)
        ]
    elif isinstance(layer, Bidirectional):
        forward, backward = layer.forward_layer, layer.backward_layer
        for part in (forward, backward):
            if isinstance(part.cell, StackedCells):
                raise ValueError(
                    f"{layer_name(layer)} runs each direction through stacked "
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
            f"{layer_name(owner)} has a forward layer with "
            "go_backwards=True; torch's forward direction reads "
            "the sequence in order."
        )


def _check_cells(structure: list[list[Any]], layer: Any) -> None:
    """Each cell must compute what torch does, and all alike (torch's layers
    share hidden_size, bias and nonlinearity)."""
    owner, signatures = layer_name(layer), set()
    for cells in structure:
        for cell in cells:
            check_cell(cell, owner)
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
            f"{layer_name(layer)} mixes cells or directions ("
            f"{sorted((s[:3] for s in signatures), key=str)}); a torch "
            "module's layers share one cell type, hidden_size, bias and "
            "direction count."
        )


def _check_stack_entry(name: str, layer: Any) -> None:
    if isinstance(layer, TorchStack) or len(torch_structure(layer)) != 1:
        raise ValueError(
            f"`{name}` must stand for one torch layer (an LSTM, "
            "GRU or SimpleRNN layer, or a Bidirectional one), "
            f"got {layer_name(layer)}."
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


def layer_name(layer: Any) -> str:
    """A short description for messages: ``Bidirectional(LSTM(units=8))``."""
    if isinstance(layer, TorchStack):
        first, count = layer_name(layer.layers[0]), len(layer.layers)
        return f"TorchStack([{first}, ...] x {count})"
    if isinstance(layer, Bidirectional):
        return f"Bidirectional({layer_name(layer.layer)})"
    cell = getattr(layer, "cell", None)
    if isinstance(cell, StackedCells):
        inner = ", ".join(cell_label(c) for c in cell.cells)
        return f"{type(layer).__name__}([{inner}])"
    if isinstance(layer, RNN):
        return f"RNN({cell_label(cell)})"
    return f"{type(layer).__name__}(units={getattr(cell, 'units', '?')})"


def is_time_major(layer: Any) -> bool:
    """A torch-like layer's ``time_major`` (a `Bidirectional`'s inner
    layer's)."""
    inner = layer.layer if isinstance(layer, Bidirectional) else layer
    return inner.time_major


def _output_size(layer: Any) -> int:
    """The feature size a layer hands the next: H times its directions."""
    structure = torch_structure(layer)
    return structure[-1][0].units * len(structure[-1])


def slot_count(layer: Any) -> int:
    """`num_layers * num_directions`: the leading size of torch's states."""
    return sum(len(cells) for cells in torch_structure(layer))


def check_list(name: str, value: Any, length: int) -> None:
    """Raises TypeError unless `value` is a list or tuple of `length`."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        got = len(value) if isinstance(value, (list, tuple)) else None
        raise TypeError(
            f"{name} must be a list of {length} entries (one per "
            f"layer), got {type(value).__name__}"
            f"{'' if got is None else f' of length {got}'}."
        )
