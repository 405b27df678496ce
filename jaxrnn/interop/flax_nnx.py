"""Flax NNX cells (``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``,
``nnx.GRUCell``, ``nnx.SimpleCell``) <-> jaxrnn cells and params.

An NNX module holds its arrays, so `from_nnx` needs only the module;
`to_nnx` builds a module (or a filled copy of one you give). H is
``hidden_features``, D ``in_features``:

=========================  ==================================================
flax.nnx                   jaxrnn
=========================  ==================================================
``LSTMCell``               ``LSTMCell(H, activation=activation_fn,
                           recurrent_activation=gate_fn)``: ``ii, if_, ig,
                           io`` kernels (D, H) side by side are ``kernel``,
                           the ``hi, hf, hg, ho`` kernels ``recurrent_kernel``
                           and their biases ``bias``.
``OptimizedLSTMCell``      the same cell: ``dense_i.kernel`` (D, 4H) is
                           ``kernel``, ``dense_h.kernel`` (H, 4H)
                           ``recurrent_kernel``, ``dense_h.bias`` ``bias``;
                           gates i, f, g, o are Keras' i, f, c, o.
``GRUCell``                ``GRUCell(H, reset_after=True)``: ``dense_i`` (D,
                           3H) with bias and ``dense_h`` (H, 3H) without, gates
                           (r, z, n) reordered to Keras' (z, r, h); bias row 0
                           is ``dense_i.bias``, row 1 zeros.
``SimpleCell``             ``SimpleRNNCell(H, activation=activation_fn)``:
                           ``dense_i`` (kernel, bias), ``dense_h`` (kernel);
                           ``residual=True`` adds the identity to
                           ``recurrent_kernel``.
=========================  ==================================================

NNX's GRU candidate is ``n = tanh(x W_in + b_in + r * (h W_hn))``: no
recurrent bias inside the reset gate. A jaxrnn GRU whose candidate recurrent
bias (``params['bias'][1, 2H:]``) is not zero has no NNX counterpart, and
`to_nnx` raises rather than drop it (`to_linen` writes it: linen's GRUCell
has ``hn.bias``); ``reset_after=False`` has none either. The recurrent z and
r biases are added to the input ones. NNX's LSTM carry is ``(c, h)``,
jaxrnn's ``(h, c)``. ``dtype`` and ``param_dtype`` carry over; a custom
``promote_dtype`` is refused. Flax is imported only when a function here is
called.
"""

from __future__ import annotations

import keyword
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

# nnx.LSTMCell's per-gate Linears in Keras' order of gates: ii, if_, ig, io
# (an attribute cannot be the keyword ``if``) and hi, hf, hg, ho.
_LSTM_GATES = _gates.gate_order("flax_nnx", "lstm").names_in_keras_order
_GATE_NAMES = (
    [f"i{g}_" if keyword.iskeyword(f"i{g}") else f"i{g}" for g in _LSTM_GATES],
    [f"h{g}" for g in _LSTM_GATES],
)
_COUNTERPARTS = {
    LSTMCell: "nnx.LSTMCell or nnx.OptimizedLSTMCell",
    GRUCell: "nnx.GRUCell",
    SimpleRNNCell: "nnx.SimpleCell",
}
_PEERS = {
    LSTMCell: "flax.nnx.LSTMCell",
    GRUCell: "flax.nnx.GRUCell",
    SimpleRNNCell: "flax.nnx.SimpleCell",
}


def _nnx():
    from flax import nnx  # Lazy: Flax is an optional dependency.

    return nnx


def _kinds() -> dict[type, type]:
    """NNX cell class -> the jaxrnn cell type that computes the same."""
    nnx = _nnx()
    return {
        nnx.LSTMCell: LSTMCell,
        nnx.OptimizedLSTMCell: LSTMCell,
        nnx.GRUCell: GRUCell,
        nnx.SimpleCell: SimpleRNNCell,
    }


def from_nnx(module: Any) -> tuple[Any, dict[str, jax.Array]]:
    """Converts a Flax NNX cell into a jaxrnn cell and params.

    Args:
      module: an ``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``,
        ``nnx.GRUCell`` or ``nnx.SimpleCell``; its arrays,
        ``hidden_features``, ``gate_fn``, ``activation_fn``, ``dtype``,
        ``param_dtype`` (and ``residual``) are read. It is left unchanged.

    Returns:
      ``(cell, params)``: the jaxrnn cell that computes what `module` does
      and its params in Keras' layout (see the module docstring).

    Raises:
      TypeError: `module` is not one of those NNX cells.
      ValueError: its arrays do not fit its sizes, or it has a custom
        ``promote_dtype``.

    Example:
      >>> from flax import nnx
      >>> module = nnx.OptimizedLSTMCell(3, 4, rngs=nnx.Rngs(0))
      >>> cell, params = from_nnx(module)
      >>> import jaxrnn
      >>> cell == jaxrnn.LSTMCell(4)
      True
      >>> bool((params["bias"] == module.dense_h.bias[...]).all())
      True
    """
    nnx = _nnx()
    kind = _kind(module)
    _check_promote_dtype(module)
    units, input_dim = module.hidden_features, module.in_features
    owner = (
        f"flax.nnx {type(module).__name__}(in_features={input_dim}, "
        f"hidden_features={units})"
    )
    pure = nnx.to_pure_dict(nnx.state(module, nnx.Param))
    arrays = _peers.check_layout(
        owner, pure, _layout(type(module), input_dim, units)
    )
    cell = cell_from_flax(module, kind, units)
    if type(module) is nnx.LSTMCell:
        return cell, lstm_from_gates(arrays, *_GATE_NAMES)
    if kind is LSTMCell:  # OptimizedLSTMCell: Keras' layout, fused
        return cell, {
            "kernel": _from_nnx_order(arrays["dense_i"]["kernel"], "lstm"),
            "recurrent_kernel": _from_nnx_order(
                arrays["dense_h"]["kernel"], "lstm"
            ),
            "bias": _from_nnx_order(arrays["dense_h"]["bias"], "lstm"),
        }
    if kind is GRUCell:
        return cell, _gru_from_nnx(arrays)
    return cell, simple_from_dense(
        arrays["dense_i"], arrays["dense_h"]["kernel"], module.residual
    )


def to_nnx(cell: Any, params: dict[str, Any], module: Any = None) -> Any:
    """Converts a jaxrnn cell and params into a Flax NNX cell.

    Args:
      cell: a jaxrnn ``LSTMCell``, ``GRUCell`` (``reset_after=True``, zero
        candidate recurrent bias) or ``SimpleRNNCell`` with
        ``precision=None``.
      params: the cell's params (from ``init`` or `from_nnx`).
      module: which NNX cell to return. None: the default counterpart
        (``nnx.LSTMCell``, ``nnx.GRUCell``, ``nnx.SimpleCell``) with the
        cell's activations, ``dtype`` and ``param_dtype``. A class (say
        ``nnx.OptimizedLSTMCell``): that class, built likewise. An instance:
        a copy of it holding `params` (the instance itself is left
        unchanged); it must agree with `cell` (sizes, activations,
        ``residual=False``) and keeps its own dtypes and metadata.

    Returns:
      The NNX module; call it as ``module(carry, x)`` with NNX's LSTM carry
      ``(c, h)``. Building one does not run NNX's initializers.

    Raises:
      TypeError: `cell` has no NNX counterpart, `module` is not a
        counterpart of `cell`, or `params` is not a dict of float arrays.
      ValueError: `params` does not fit `cell`; `cell` is a
        ``reset_after=False`` GRU, a GRU with a non-zero candidate
        recurrent bias, or has a ``precision``; or the `module` instance
        disagrees with `cell`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxrnn
      >>> cell = jaxrnn.GRUCell(4)
      >>> params = cell.init(jax.random.key(0), 3)   # zero biases
      >>> module = to_nnx(cell, params)
      >>> h, y = module(jnp.zeros(4), jnp.ones(3))
      >>> type(module).__name__, module.dense_i.kernel.shape, y.shape
      ('GRUCell', (3, 12), (4,))
    """
    nnx = _nnx()
    _peers.check_cell_type(cell, "Flax NNX", _COUNTERPARTS)
    peer = _PEERS[type(cell)]
    _peers.check_expressible(cell, peer)
    input_dim = _peers.check_cell_params(cell, params)
    if isinstance(cell, GRUCell):
        _peers.check_reset_after(
            cell,
            peer,
            True,
            "applies the reset gate after the recurrent "
            "matmul, n = tanh(W_in x + b_in + r * (W_hn h))",
        )
    module = _target_module(cell, module, input_dim)
    pure = _pure_dict(type(module), cell, params)
    graphdef, state, rest = nnx.split(module, nnx.Param, ...)
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state, rest)


# Which NNX cell; its arrays' names and shapes.


def _kind(module: Any) -> type:
    kinds = _kinds()
    if type(module) in kinds:
        return kinds[type(module)]
    origin = type(module).__module__.split(".")
    hint = (
        " (a Flax linen cell: use from_linen)"
        if origin[:2] == ["flax", "linen"]
        else ""
    )
    got = (
        "the class itself, not an instance"
        if isinstance(module, type)
        else type(module).__name__ + hint
    )
    raise TypeError(
        "`module` must be a flax.nnx LSTMCell, OptimizedLSTMCell, "
        f"GRUCell or SimpleCell instance, got {got}."
    )


def _check_promote_dtype(module: Any) -> None:
    from flax.nnx.nn import dtypes

    if module.promote_dtype is not dtypes.promote_dtype:
        raise ValueError(
            f"`module` ({type(module).__name__}) has a custom promote_dtype "
            f"({getattr(module.promote_dtype, '__name__', '?')}); jaxrnn "
            "cells promote as Flax's default does (to `dtype`, else the "
            "inputs' and weights' common type) and cannot express another."
        )


def _layout(cls: type, input_dim: int, units: int) -> _peers.Layout:
    nnx = _nnx()
    into, square = (input_dim, units), (units, units)
    if cls is nnx.LSTMCell:
        inputs, hiddens = _GATE_NAMES
        return {
            **{n: {"kernel": into} for n in inputs},
            **{n: {"kernel": square, "bias": (units,)} for n in hiddens},
        }
    gates = {nnx.OptimizedLSTMCell: 4, nnx.GRUCell: 3, nnx.SimpleCell: 1}[cls]
    wide = gates * units
    dense_i: dict[str, tuple[int, ...]] = {"kernel": (input_dim, wide)}
    dense_h: dict[str, tuple[int, ...]] = {"kernel": (units, wide)}
    # The bias sits on dense_h for the LSTM, on dense_i for the others.
    (dense_h if cls is nnx.OptimizedLSTMCell else dense_i)["bias"] = (wide,)
    return {"dense_i": dense_i, "dense_h": dense_h}


def _target_module(cell: Any, module: Any, input_dim: int) -> Any:
    """The module to fill: an abstract one of the chosen class, or the
    checked template."""
    nnx = _nnx()
    allowed = [k for k, v in _kinds().items() if v is type(cell)]
    if module is None or isinstance(module, type):
        cls = allowed[0] if module is None else module
        if cls not in allowed:
            raise TypeError(
                f"`module` must be one of "
                f"{[c.__name__ for c in allowed]} for "
                f"{_peers.cell_label(cell)}, got {cls.__name__}."
            )
        # Shapes only: the arrays are replaced, so skip the initializers.
        return nnx.eval_shape(
            lambda: cls(
                in_features=input_dim,
                hidden_features=cell.units,
                **flax_settings(cell),
                rngs=nnx.Rngs(0),
            )
        )
    if type(module) not in allowed:
        raise TypeError(
            f"`module` must be an instance of one of "
            f"{[c.__name__ for c in allowed]} for "
            f"{_peers.cell_label(cell)}, got "
            f"{type(module).__name__}."
        )
    _check_promote_dtype(module)
    _peers.check_template(
        cell,
        module,
        [
            ("in_features", "params['kernel'] rows", input_dim),
            *template_pairs(cell, "hidden_features"),
        ],
    )
    return module


# Arrays.


def _pure_dict(cls: type, cell: Any, params: Mapping[str, Any]) -> dict:
    nnx = _nnx()
    if cls is nnx.LSTMCell:
        return lstm_to_gates(cell, params, *_GATE_NAMES)
    if cls is nnx.OptimizedLSTMCell:
        kernel = jnp.asarray(params["kernel"])
        bias = (
            jnp.asarray(params["bias"])
            if "bias" in params
            else (jnp.zeros((4 * cell.units,), kernel.dtype))
        )
        recurrent = jnp.asarray(params["recurrent_kernel"])
        return {
            "dense_i": {"kernel": _to_nnx_order(kernel, "lstm")},
            "dense_h": {
                "kernel": _to_nnx_order(recurrent, "lstm"),
                "bias": _to_nnx_order(bias, "lstm"),
            },
        }
    if cls is nnx.GRUCell:
        return _gru_to_nnx(cell, params)
    return simple_to_dense(cell, params, "dense_i", "dense_h")


def _from_nnx_order(array: jax.Array, kind: str) -> jax.Array:
    return _gates.reorder(array, "flax_nnx", "keras", kind)


def _to_nnx_order(array: jax.Array, kind: str) -> jax.Array:
    return _gates.reorder(array, "keras", "flax_nnx", kind)


def _gru_from_nnx(
    arrays: Mapping[str, Mapping[str, jax.Array]],
) -> dict[str, jax.Array]:
    """NNX's (r, z, n) -> Keras' (z, r, h); no recurrent bias at all."""
    bias = _from_nnx_order(arrays["dense_i"]["bias"], "gru")
    return {
        "kernel": _from_nnx_order(arrays["dense_i"]["kernel"], "gru"),
        "recurrent_kernel": _from_nnx_order(
            arrays["dense_h"]["kernel"], "gru"
        ),
        "bias": jnp.stack([bias, jnp.zeros_like(bias)]),
    }


def _gru_to_nnx(cell: GRUCell, params: Mapping[str, Any]) -> dict:
    units = cell.units
    kernel = jnp.asarray(params["kernel"])
    input_bias, recurrent_bias = _peers.split_gru_bias(
        cell, params, kernel.dtype
    )
    _peers.check_zero_slice(
        cell,
        recurrent_bias[2 * units :],
        "params['bias'][1, 2H:] (the candidate's recurrent bias)",
        "flax.nnx.GRUCell",
        "has no recurrent bias inside the reset gate (n = tanh(W_in x + "
        "b_in + r * (W_hn h))), and r * b_hn cannot move anywhere else",
    )
    folded = _peers.fold_gru_gate_biases(input_bias, recurrent_bias, units)
    recurrent = jnp.asarray(params["recurrent_kernel"])
    return {
        "dense_i": {
            "kernel": _to_nnx_order(kernel, "gru"),
            "bias": _to_nnx_order(folded, "gru"),
        },
        "dense_h": {"kernel": _to_nnx_order(recurrent, "gru")},
    }
