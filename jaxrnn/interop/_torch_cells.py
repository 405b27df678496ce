"""One torch layer and direction <-> one jaxrnn cell: the weight mapping.

Which jaxrnn cell stands for which torch module (`COUNTERPARTS`), what a
cell must be to compute what torch computes (`check_cell`), and the arrays
of one torch layer and direction, ``weight_ih_l{k}{_reverse}`` and the
rest, as one cell's Keras-layout params and back (`cell_from_torch`,
`cell_to_torch`): kernels transposed, gate blocks reordered through
`jaxrnn.interop._gates`, torch's two LSTM and RNN biases summed into one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import activations
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.interop import _gates
from jaxrnn.layers.recurrent import GRU, LSTM, SimpleRNN

# Cell type -> (torch module, jaxrnn layer).
COUNTERPARTS = {
    SimpleRNNCell: ("nn.RNN", SimpleRNN),
    LSTMCell: ("nn.LSTM", LSTM),
    GRUCell: ("nn.GRU", GRU),
}


def check_cell(cell: Any, owner: str) -> None:
    """Raises unless `cell` computes what its torch counterpart computes;
    `owner` names the layer that holds it."""
    if type(cell) not in COUNTERPARTS:
        raise TypeError(
            f"{owner} holds a {type(cell).__name__}; only "
            "SimpleRNNCell (nn.RNN), LSTMCell (nn.LSTM) and "
            "GRUCell (nn.GRU) have torch counterparts."
        )
    torch_name = COUNTERPARTS[type(cell)][0]
    allowed = (
        ("tanh", "relu") if isinstance(cell, SimpleRNNCell) else ("tanh",)
    )
    if not any(
        activations.get(cell.activation) is activations.get(name)
        for name in allowed
    ):
        raise ValueError(
            f"{torch_name} uses activation {' or '.join(allowed)}"
            f", got {cell.activation!r} in {owner}."
        )
    recurrent = getattr(cell, "recurrent_activation", "sigmoid")
    if activations.get(recurrent) is not activations.get("sigmoid"):
        raise ValueError(
            f"{torch_name} uses recurrent_activation 'sigmoid', "
            f"got {recurrent!r} in {owner}."
        )
    if isinstance(cell, GRUCell) and not cell.reset_after:
        raise ValueError(
            f"nn.GRU applies the reset gate after the recurrent "
            f"matmul, so {owner} needs reset_after=True."
        )


def name_suffix(layer: int, direction: int) -> str:
    """torch's name ending: ``_l1`` or ``_l1_reverse``."""
    return f"_l{layer}{'_reverse' if direction else ''}"


def _reorder_gates(
    arrays: Mapping[str, np.ndarray], cell: Any, src: str, dst: str
) -> dict[str, np.ndarray]:
    """Every array's gate blocks (last axis) from `src`'s order to `dst`'s:
    the GRU's move (torch's r, z, n), the LSTM's stay (_gates.TABLE)."""
    if isinstance(cell, SimpleRNNCell):
        return dict(arrays)  # one block: no order to change
    kind = "gru" if isinstance(cell, GRUCell) else "lstm"
    return {k: _gates.reorder(v, src, dst, kind) for k, v in arrays.items()}


def cell_from_torch(
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


def cell_to_torch(
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
