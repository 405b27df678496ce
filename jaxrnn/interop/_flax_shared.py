"""What the Flax linen and NNX converters share.

Both libraries' cells take the same settings (``activation_fn``,
``gate_fn``, ``dtype``, ``param_dtype``) and split their LSTM and Elman
weights into the same per-gate Denses, so the settings (`cell_from_flax`,
`flax_settings`, `template_pairs`) and the arrays (`lstm_from_gates`,
`lstm_to_gates`, `simple_from_dense`, `simple_to_dense`) are read and
written here once; each converter keeps its own names and its GRU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import activations
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.interop import _peers


def cell_from_flax(module: Any, kind: type, units: int) -> Any:
    """The jaxrnn cell for a linen or NNX cell (they share these settings)."""
    settings = {
        "activation": _peers.activation_name(module.activation_fn),
        "dtype": _peers.dtype_name(module.dtype),
        "param_dtype": _peers.dtype_name(module.param_dtype),
    }
    if kind is SimpleRNNCell:
        return SimpleRNNCell(units, **settings)
    settings["recurrent_activation"] = _peers.activation_name(module.gate_fn)
    if kind is GRUCell:
        settings["reset_after"] = True
    return kind(units, **settings)


def flax_settings(cell: Any) -> dict[str, Any]:
    """A linen or NNX cell's constructor arguments for `cell`'s settings."""
    settings = {
        "activation_fn": activations.get(cell.activation),
        "dtype": None if cell.dtype is None else jnp.dtype(cell.dtype),
        "param_dtype": jnp.dtype(cell.param_dtype),
    }
    if not isinstance(cell, SimpleRNNCell):
        settings["gate_fn"] = activations.get(cell.recurrent_activation)
    return settings


def template_pairs(
    cell: Any, units_attribute: str
) -> list[tuple[str, str, Any]]:
    """What a Flax template must agree on: (its attribute, where the value
    comes from, the value)."""
    pairs = [
        (units_attribute, "units", cell.units),
        ("activation_fn", "activation", cell.activation),
    ]
    if isinstance(cell, SimpleRNNCell):
        pairs.append(
            (
                "residual",
                "to_linen and to_nnx write plain recurrent kernels",
                False,
            )
        )
    else:
        pairs.append(
            ("gate_fn", "recurrent_activation", cell.recurrent_activation)
        )
    return pairs


def lstm_from_gates(
    arrays: Mapping[str, Mapping[str, jax.Array]],
    inputs: list[str],
    hiddens: list[str],
) -> dict[str, jax.Array]:
    """Per-gate Denses (i, f, g, o) -> Keras' LSTM params."""
    return {
        "kernel": jnp.concatenate(
            [arrays[n]["kernel"] for n in inputs], axis=-1
        ),  # (D, 4H)
        "recurrent_kernel": jnp.concatenate(
            [arrays[n]["kernel"] for n in hiddens], axis=-1
        ),  # (H, 4H)
        "bias": jnp.concatenate([arrays[n]["bias"] for n in hiddens]),
    }


def lstm_to_gates(
    cell: LSTMCell,
    params: Mapping[str, Any],
    inputs: list[str],
    hiddens: list[str],
) -> dict[str, dict[str, jax.Array]]:
    """Keras' LSTM params -> per-gate Denses; the bias goes on the recurrent
    ones (zeros without a bias)."""
    kernel = jnp.asarray(params["kernel"])
    recurrent = jnp.asarray(params["recurrent_kernel"])
    bias = (
        jnp.asarray(params["bias"])
        if "bias" in params
        else jnp.zeros((4 * cell.units,), kernel.dtype)
    )
    out = {}
    for k, (i_name, h_name) in enumerate(zip(inputs, hiddens)):
        gate = slice(k * cell.units, (k + 1) * cell.units)
        out[i_name] = {"kernel": kernel[:, gate]}
        out[h_name] = {"kernel": recurrent[:, gate], "bias": bias[gate]}
    return out


def simple_from_dense(
    dense_i: Mapping[str, jax.Array], recurrent: jax.Array, residual: bool
) -> dict[str, jax.Array]:
    """The Elman cell: input Dense with bias, recurrent Dense without."""
    if residual:  # tanh(x W_i + b + h W_h + h) = tanh(x W_i + b + h (W_h + I))
        recurrent = recurrent + jnp.eye(
            recurrent.shape[0], dtype=recurrent.dtype
        )
    return {
        "kernel": dense_i["kernel"],
        "recurrent_kernel": recurrent,
        "bias": dense_i["bias"],
    }


def simple_to_dense(
    cell: SimpleRNNCell,
    params: Mapping[str, Any],
    input_name: str,
    hidden_name: str,
) -> dict[str, Any]:
    kernel = jnp.asarray(params["kernel"])
    bias = (
        jnp.asarray(params["bias"])
        if "bias" in params
        else jnp.zeros((cell.units,), kernel.dtype)
    )
    return {
        input_name: {"kernel": kernel, "bias": bias},
        hidden_name: {"kernel": jnp.asarray(params["recurrent_kernel"])},
    }
