"""Flax linen cells (``nn.LSTMCell``, ``nn.OptimizedLSTMCell``,
``nn.GRUCell``, ``nn.SimpleCell``) and their params <-> jaxrnn cells.

`from_linen` reads a linen cell and its variables into a jaxrnn cell and
params; `to_linen` goes back. H is ``features``, D the input size:

=========================  ==================================================
flax.linen                 jaxrnn
=========================  ==================================================
``LSTMCell``,              ``LSTMCell(H, activation=activation_fn,
``OptimizedLSTMCell``      recurrent_activation=gate_fn)``: ``kernel`` is
                           ``ii, if, ig, io`` kernels (D, H) side by side,
                           ``recurrent_kernel`` the ``h*`` kernels (H, H),
                           ``bias`` the ``h*`` biases (the ``i*`` Denses have
                           none). Both classes have the same variables.
``GRUCell``                ``GRUCell(H, reset_after=True)``: gates reordered
                           from linen's (r, z, n) to Keras' (z, r, h); bias
                           row 0 is ``iz, ir, in``'s biases, row 1 is
                           ``[0, 0, hn's bias]`` (linen has no recurrent bias
                           on the gates).
``SimpleCell``             ``SimpleRNNCell(H, activation=activation_fn)``:
                           ``i`` (kernel, bias), ``h`` (kernel);
                           ``residual=True`` adds the identity to
                           ``recurrent_kernel`` (``h W + h = h (W + I)``).
=========================  ==================================================

linen's LSTM carry is ``(c, h)``; jaxrnn's is ``(h, c)``. ``dtype`` and
``param_dtype`` carry over; initializers do not (they do not change what the
weights compute). Going to linen, a GRU's recurrent z and r biases are added
to the input ones (both are plain sums inside the gates); a
``reset_after=False`` GRU has no linen counterpart (linen applies the reset
gate after the recurrent matmul), and a cell without bias gets zero biases.
Flax is imported only when a function here is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.interop import _gates, _peers
from jaxrnn.interop._flax_shared import (
    cell_from_flax,
    flax_settings,
    lstm_from_gates,
    lstm_to_gates,
    simple_from_dense,
    simple_to_dense,
    template_pairs,
)

# linen's gate letters (its Denses are i + letter and h + letter) arranged in
# Keras' order of gates: i, f, g, o for the LSTM, z, r, n for the GRU.
_LSTM_GATES = _gates.gate_order("flax_linen", "lstm").names_in_keras_order
_GRU_GATES = _gates.gate_order("flax_linen", "gru").names_in_keras_order
_LSTM_DENSES = ([f"i{g}" for g in _LSTM_GATES], [f"h{g}" for g in _LSTM_GATES])
_COUNTERPARTS = {
    LSTMCell: "nn.LSTMCell or nn.OptimizedLSTMCell",
    GRUCell: "nn.GRUCell",
    SimpleRNNCell: "nn.SimpleCell",
}
_FIRST_INPUT = {LSTMCell: "ii", GRUCell: "ir", SimpleRNNCell: "i"}
_PEERS = {
    LSTMCell: "flax.linen.LSTMCell",
    GRUCell: "flax.linen.GRUCell",
    SimpleRNNCell: "flax.linen.SimpleCell",
}


def _linen():
    import flax.linen as nn  # Lazy: Flax is an optional dependency.

    return nn


def _kinds() -> dict[type, type]:
    """linen cell class -> the jaxrnn cell type that computes the same."""
    nn = _linen()
    return {
        nn.LSTMCell: LSTMCell,
        nn.OptimizedLSTMCell: LSTMCell,
        nn.GRUCell: GRUCell,
        nn.SimpleCell: SimpleRNNCell,
    }


def from_linen(
    module: Any, variables: Any
) -> tuple[Any, dict[str, jax.Array]]:
    """Converts a Flax linen cell and its variables into a jaxrnn cell and
    params.

    Args:
      module: a ``flax.linen`` ``LSTMCell``, ``OptimizedLSTMCell``,
        ``GRUCell`` or ``SimpleCell``; its ``features``, ``gate_fn``,
        ``activation_fn``, ``dtype``, ``param_dtype`` (and ``residual``) are
        read.
      variables: what ``module.init`` returns, ``{'params': {...}}``, or the
        inner params dict (for a cell inside ``nn.RNN``:
        ``variables['params']['cell']``).

    Returns:
      ``(cell, params)``: the jaxrnn cell that computes what `module` does
      and its params in Keras' layout (see the module docstring), JAX
      arrays of the variables' dtype.

    Raises:
      TypeError: `module` is not one of those linen cells, or a value is not
        a float array.
      ValueError: the variables' names or shapes do not fit `module`.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> module = nn.GRUCell(features=4)
      >>> variables = module.init(jax.random.key(0), jnp.zeros(4), jnp.zeros(3))
      >>> cell, params = from_linen(module, variables)
      >>> import jaxrnn
      >>> cell == jaxrnn.GRUCell(4)
      True
      >>> params["kernel"].shape, params["bias"].shape
      ((3, 12), (2, 12))
    """
    kind = _kind(module)
    units = module.features
    owner = f"flax.linen {type(module).__name__}(features={units})"
    params = _inner_params(variables)
    input_dim = _peers.rows_of(params, _FIRST_INPUT[kind])
    arrays = _peers.check_layout(
        owner, params, _layout(kind, units, input_dim), _hint(variables)
    )
    cell = cell_from_flax(module, kind, units)
    if kind is LSTMCell:
        return cell, lstm_from_gates(arrays, *_LSTM_DENSES)
    if kind is GRUCell:
        return cell, _gru_from_linen(arrays)
    return cell, simple_from_dense(
        arrays["i"], arrays["h"]["kernel"], module.residual
    )


def to_linen(
    cell: Any, params: dict[str, Any], module: Any = None
) -> tuple[Any, dict[str, Any]]:
    """Converts a jaxrnn cell and params into a Flax linen cell and variables.

    Args:
      cell: a jaxrnn ``LSTMCell``, ``GRUCell`` (``reset_after=True``) or
        ``SimpleRNNCell`` with ``precision=None``.
      params: the cell's params (from ``init`` or `from_linen`).
      module: which linen cell to return. None: the default counterpart
        (``nn.LSTMCell``, ``nn.GRUCell``, ``nn.SimpleCell``) built from the
        cell's activations, ``dtype`` and ``param_dtype``. A class (say
        ``nn.OptimizedLSTMCell``): that class, built likewise. An instance:
        returned as is after checking it agrees with `cell` (features,
        activations, ``residual=False``); it keeps its own dtypes and
        initializers.

    Returns:
      ``(module, variables)`` with ``variables = {'params': {...}}``, ready
      for ``module.apply(variables, carry, x)``; carry linen's ``(c, h)`` for
      an LSTM. A GRU's recurrent z and r biases are added to the input ones;
      a cell without bias gets zero biases.

    Raises:
      TypeError: `cell` has no linen counterpart, `module` is not a
        counterpart of `cell`, or `params` is not a dict of float arrays.
      ValueError: `params` does not fit `cell`, `cell` is a
        ``reset_after=False`` GRU or has a ``precision``, or the `module`
        instance disagrees with `cell`.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> import jaxrnn
      >>> cell = jaxrnn.LSTMCell(4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> module, variables = to_linen(cell, params, nn.OptimizedLSTMCell)
      >>> (c, h), y = module.apply(variables, (jnp.zeros(4), jnp.zeros(4)),
      ...                          jnp.ones(3))
      >>> type(module).__name__, sorted(variables["params"])[:3], y.shape
      ('OptimizedLSTMCell', ['hf', 'hg', 'hi'], (4,))
    """
    _peers.check_cell_type(cell, "flax.linen", _COUNTERPARTS)
    peer = _PEERS[type(cell)]
    _peers.check_expressible(cell, peer)
    _peers.check_cell_params(cell, params)
    if isinstance(cell, GRUCell):
        _peers.check_reset_after(
            cell,
            peer,
            True,
            "applies the reset gate after the recurrent "
            "matmul, n = tanh(W_in x + b_in + r * (W_hn h + b_hn))",
        )
    module = _target_module(cell, module)
    if isinstance(cell, LSTMCell):
        linen = lstm_to_gates(cell, params, *_LSTM_DENSES)
    elif isinstance(cell, GRUCell):
        linen = _gru_to_linen(cell, params)
    else:
        linen = simple_to_dense(cell, params, "i", "h")
    return module, {"params": linen}


# Which linen cell; its variables' names and shapes.


def _kind(module: Any) -> type:
    kinds = _kinds()
    if type(module) in kinds:
        return kinds[type(module)]
    origin = type(module).__module__.split(".")
    hint = (
        " (a Flax NNX cell: use from_nnx)"
        if origin[:2] == ["flax", "nnx"]
        else ""
    )
    got = (
        "the class itself, not an instance"
        if isinstance(module, type)
        else type(module).__name__ + hint
    )
    raise TypeError(
        "`module` must be a flax.linen LSTMCell, "
        "OptimizedLSTMCell, GRUCell or SimpleCell instance, got "
        f"{got}."
    )


def _inner_params(variables: Any) -> Any:
    """``{'params': p}`` -> p; anything else as it came (checked later)."""
    if isinstance(variables, Mapping) and "params" in variables:
        others = sorted(set(variables) - {"params"})
        if others:
            raise ValueError(
                "`variables` must hold only the 'params' "
                "collection (linen cells have no other), got "
                f"{sorted(variables)}."
            )
        return variables["params"]
    return variables


def _hint(variables: Any) -> str:
    inner = _inner_params(variables)
    if isinstance(inner, Mapping) and set(inner) == {"cell"}:
        return (
            " These look like nn.RNN's params: pass "
            "variables['params']['cell']."
        )
    return ""


def _layout(kind: type, units: int, input_dim: int | None) -> _peers.Layout:
    """Names and shapes of a linen cell's params."""
    into = (input_dim, units)  # (D, H)
    square = (units, units)
    if kind is LSTMCell:
        inputs, hiddens = _LSTM_DENSES
        return {
            **{name: {"kernel": into} for name in inputs},
            **{name: {"kernel": square, "bias": (units,)} for name in hiddens},
        }
    if kind is GRUCell:
        return {
            "ir": {"kernel": into, "bias": (units,)},
            "iz": {"kernel": into, "bias": (units,)},
            "in": {"kernel": into, "bias": (units,)},
            "hr": {"kernel": square},
            "hz": {"kernel": square},
            "hn": {"kernel": square, "bias": (units,)},
        }
    return {"i": {"kernel": into, "bias": (units,)}, "h": {"kernel": square}}


def _target_module(cell: Any, module: Any) -> Any:
    """The linen cell to_linen returns: built, or a checked template."""
    allowed = [k for k, v in _kinds().items() if v is type(cell)]
    if module is None or isinstance(module, type):
        cls = allowed[0] if module is None else module
        if cls not in allowed:
            raise TypeError(
                f"`module` must be one of "
                f"{[c.__name__ for c in allowed]} for "
                f"{_peers.cell_label(cell)}, got {cls.__name__}."
            )
        return cls(features=cell.units, **flax_settings(cell))
    if type(module) not in allowed:
        raise TypeError(
            f"`module` must be an instance of one of "
            f"{[c.__name__ for c in allowed]} for "
            f"{_peers.cell_label(cell)}, got "
            f"{type(module).__name__}."
        )
    _peers.check_template(cell, module, template_pairs(cell, "features"))
    return module


def _gru_from_linen(
    arrays: Mapping[str, Mapping[str, jax.Array]],
) -> dict[str, jax.Array]:
    """linen's six Denses (r, z, n) -> Keras' reset_after GRU (z, r, h)."""

    def side(prefix, leaf):
        return jnp.concatenate(
            [arrays[prefix + g][leaf] for g in _GRU_GATES], axis=-1
        )

    hn_bias = arrays["hn"]["bias"]
    zeros = jnp.zeros((2 * hn_bias.shape[0],), hn_bias.dtype)
    return {
        "kernel": side("i", "kernel"),  # (D, 3H)
        "recurrent_kernel": side("h", "kernel"),  # (H, 3H)
        "bias": jnp.stack(
            [side("i", "bias"), jnp.concatenate([zeros, hn_bias])]
        ),
    }


def _gru_to_linen(
    cell: GRUCell, params: Mapping[str, Any]
) -> dict[str, dict[str, jax.Array]]:
    units = cell.units
    kernel = jnp.asarray(params["kernel"])
    recurrent = jnp.asarray(params["recurrent_kernel"])
    input_bias, recurrent_bias = _peers.split_gru_bias(
        cell, params, kernel.dtype
    )
    folded = _peers.fold_gru_gate_biases(input_bias, recurrent_bias, units)
    out = {}
    for k, gate in enumerate(_GRU_GATES):
        part = slice(k * units, (k + 1) * units)
        out["i" + gate] = {"kernel": kernel[:, part], "bias": folded[part]}
        out["h" + gate] = {"kernel": recurrent[:, part]}
    out["hn"]["bias"] = recurrent_bias[2 * units :]
    return out
