"""Haiku cores' params (``hk.LSTM``, ``hk.GRU``, ``hk.VanillaRNN``) <->
jaxrnn cells and params.

Haiku modules exist only inside a transform, and these three fix their
activations, so the params alone say which jaxrnn cell computes the same
(H the hidden size, D the input size):

=====================  =======================================================
haiku                  jaxrnn
=====================  =======================================================
``hk.LSTM``            ``LSTMCell(H)``: ``{'lstm/linear': {'w': (D + H, 4H),
                       'b': (4H,)}}`` on ``[x, h]``; ``w[:D]`` is ``kernel``,
                       ``w[D:]`` ``recurrent_kernel``; gates (i, g, f, o)
                       reordered to Keras' (i, f, c, o); ``bias`` is ``b``
                       with **1 added to the forget slice**, since hk.LSTM
                       computes ``f = sigmoid(z_f + 1)``.
``hk.GRU``             ``GRUCell(H, reset_after=False)``: ``{'gru': {'w_i':
                       (D, 3H), 'w_h': (H, 3H), 'b': (3H,)}}``, gates (z, r,
                       a) in Keras' order, with the **update gate's columns
                       and bias negated**: Haiku computes ``h' = (1 - z) h +
                       z a`` where Keras has ``h' = z h + (1 - z) a``, and
                       ``1 - sigmoid(u) = sigmoid(-u)``.
``hk.VanillaRNN``      ``SimpleRNNCell(H, activation='relu')``:
                       ``{'vanilla_rnn/linear': {'w', 'b'},
                       'vanilla_rnn/linear_1': {'w'[, 'b']}}`` (input, then
                       hidden); the two biases (``double_bias=True``) are
                       summed.
=====================  =======================================================

`to_haiku` undoes each mapping: it subtracts the 1 back from the LSTM's
forget bias (so a round trip Haiku -> jaxrnn -> Haiku returns that slice to
within one rounding of ``b + 1``, at most 6e-8 in float32 while
``|b + 1| < 2``; every other array exactly),
negates the update gate back, and writes a SimpleRNN's whole bias to the
input Linear and zeros to the hidden one (fit for ``double_bias`` either
way: Haiku ignores a parameter no module asks for). Only the cells whose
activations are Haiku's have a counterpart (LSTM and GRU: tanh with sigmoid
gates; VanillaRNN: relu), and only ``reset_after=False`` GRUs: hk.GRU
applies the reset gate before the recurrent matmul. Haiku's carries: the
LSTM's ``LSTMState(hidden, cell)`` is jaxrnn's ``(h, c)``. Haiku is not
imported here at all: params are plain nested dicts.
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

_COUNTERPARTS = {
    LSTMCell: "hk.LSTM",
    GRUCell: "hk.GRU",
    SimpleRNNCell: "hk.VanillaRNN",
}
_DEFAULT_NAMES = {
    LSTMCell: "lstm",
    GRUCell: "gru",
    SimpleRNNCell: "vanilla_rnn",
}
_FORGET = _gates.gate_order("keras", "lstm").gates.index("f")  # its block
_UPDATE = _gates.gate_order("keras", "gru").gates.index("z")  # its block
_EXPECTED = (
    "one core's params: {'lstm/linear': {'w', 'b'}} (hk.LSTM), "
    "{'gru': {'w_i', 'w_h', 'b'}} (hk.GRU) or "
    "{'vanilla_rnn/linear': {'w', 'b'}, 'vanilla_rnn/linear_1': "
    "{'w'[, 'b']}} (hk.VanillaRNN), under any module name"
)


def from_haiku(
    params: Mapping[str, Any], name: str | None = None
) -> tuple[Any, dict[str, jax.Array]]:
    """Converts an hk.LSTM, hk.GRU or hk.VanillaRNN's params into a jaxrnn
    cell and params.

    Args:
      params: Haiku params (module name -> parameter name -> array), as
        ``hk.transform(f).init`` returns, holding one such core's params or,
        with `name`, more.
      name: keep only the entries at or under this module name (the core's
        name, such as ``'lstm'`` or ``'model/~/gru_1'``); None to use all.

    Returns:
      ``(cell, params)``: ``LSTMCell(H)``, ``GRUCell(H, reset_after=False)``
      or ``SimpleRNNCell(H, activation='relu')`` (``param_dtype`` the
      weights' dtype) and params in Keras' layout (see the module
      docstring), the LSTM's forget bias with Haiku's +1 folded in.

    Raises:
      TypeError: `params` is not a dict, or holds non-float arrays.
      ValueError: the selected entries are not one core's params, or their
        shapes do not fit together.

    Example:
      >>> import jax, jax.numpy as jnp, haiku as hk
      >>> def step(x):
      ...     core = hk.LSTM(4)
      ...     return core(x, core.initial_state(None))
      >>> hk_params = hk.transform(step).init(jax.random.key(0), jnp.ones(3))
      >>> cell, params = from_haiku(hk_params)
      >>> import jaxrnn
      >>> cell == jaxrnn.LSTMCell(4)
      True
      >>> params["bias"][4:8]  # Haiku's +1 on the forget gate
      Array([1., 1., 1., 1.], dtype=float32)
    """
    _peers.unwrap_mapping("params", params, "Haiku params")
    if name is not None and not isinstance(name, str):
        raise TypeError(
            f"`name` must be a module name (str) or None, got "
            f"{type(name).__name__}."
        )
    entries = {
        key: value
        for key, value in params.items()
        if name is None or key == name or str(key).startswith(name + "/")
    }
    if not entries:
        raise ValueError(
            f"`params` has no module named {name!r} or under it; "
            f"its modules are {sorted(params, key=str)}."
        )
    keys = sorted(entries, key=str)
    if (
        len(keys) == 1
        and isinstance(entries[keys[0]], Mapping)
        and (set(entries[keys[0]]) == {"w_i", "w_h", "b"})
    ):
        return _gru_from_haiku(keys[0], entries[keys[0]])
    if len(keys) == 1 and str(keys[0]).endswith("/linear"):
        return _lstm_from_haiku(keys[0], entries[keys[0]])
    if (
        len(keys) == 2
        and str(keys[0]).endswith("/linear")
        and (keys[1] == keys[0] + "_1")
    ):
        return _vanilla_from_haiku(keys[0][: -len("/linear")], entries)
    where = "" if name is None else f" under {name!r}"
    raise ValueError(
        f"`params` must hold {_EXPECTED}; got modules {keys}"
        f"{where}. Pass `name` to pick one core out of a "
        "larger model."
    )


def to_haiku(
    cell: Any, params: dict[str, Any], name: str | None = None
) -> dict[str, dict[str, jax.Array]]:
    """Converts a jaxrnn cell and params into Haiku params for hk.LSTM,
    hk.GRU or hk.VanillaRNN.

    Args:
      cell: a jaxrnn ``LSTMCell`` or ``GRUCell`` (``reset_after=False``),
        both with tanh and sigmoid gates, or a ``SimpleRNNCell`` with relu;
        ``precision=None`` and ``dtype`` None or the params' dtype.
      params: the cell's params (from ``init`` or `from_haiku`).
      name: the core's module name in the Haiku model; None for Haiku's
        default for a core built outside any module: ``'lstm'``, ``'gru'``
        or ``'vanilla_rnn'``.

    Returns:
      Haiku params for ``hk.LSTM(H)``, ``hk.GRU(H)`` or
      ``hk.VanillaRNN(H)``: a dict of dicts of JAX arrays (see the module
      docstring; a cell without bias gets zero biases, Haiku's LSTM the
      forget slice -1). Merge them into a larger model's params as needed.

    Raises:
      TypeError: `cell` has no Haiku counterpart or `params` is not a dict
        of float arrays.
      ValueError: `params` does not fit `cell`, or `cell` has activations,
        a ``reset_after``, a precision or a compute dtype Haiku's core
        cannot express.

    Example:
      >>> import jax, jax.numpy as jnp, haiku as hk
      >>> import jaxrnn
      >>> cell = jaxrnn.GRUCell(4, reset_after=False)
      >>> hk_params = to_haiku(cell, cell.init(jax.random.key(0), 3))
      >>> def step(x):
      ...     return hk.GRU(4)(x, jnp.zeros(4))
      >>> y, h = hk.transform(step).apply(hk_params, None, jnp.ones(3))
      >>> {k: sorted(v) for k, v in hk_params.items()}, y.shape
      ({'gru': ['b', 'w_h', 'w_i']}, (4,))
    """
    _peers.check_cell_type(cell, "Haiku", _COUNTERPARTS)
    peer = _COUNTERPARTS[type(cell)]
    _peers.check_expressible(cell, peer)
    _peers.check_cell_params(cell, params)
    _peers.check_compute_dtype(cell, params, peer)
    if name is None:
        name = _DEFAULT_NAMES[type(cell)]
    elif not isinstance(name, str) or not name:
        raise TypeError(
            f"`name` must be a non-empty module name (str) or "
            f"None, got {name!r}."
        )
    if isinstance(cell, SimpleRNNCell):
        _peers.check_fixed_activations(cell, peer, "relu", None)
        return _vanilla_to_haiku(cell, params, name)
    _peers.check_fixed_activations(cell, peer, "tanh", "sigmoid")
    if isinstance(cell, LSTMCell):
        return _lstm_to_haiku(cell, params, name)
    _peers.check_reset_after(
        cell,
        peer,
        False,
        "applies the reset gate before the recurrent "
        "matmul, a = tanh(W_ia x + W_ha (r * h) + b_a)",
    )
    return _gru_to_haiku(cell, params, name)


# One function per core and direction.


def _dtype(array: jax.Array) -> str:
    return jnp.dtype(array.dtype).name


def _lstm_from_haiku(key: str, entry: Any) -> tuple[LSTMCell, dict]:
    owner = f"hk.LSTM ({key!r})"
    arrays = _peers.check_layout(
        owner, {key: entry}, {key: {"w": (None, None), "b": (None,)}}
    )[key]
    w, b = arrays["w"], arrays["b"]
    rows, columns = w.shape
    units = columns // 4
    if columns % 4 or rows <= units:
        raise ValueError(
            f"{owner} params[{key!r}]['w'] must have shape "
            f"(D + H, 4H) with D >= 1, got {w.shape}."
        )
    _peers.as_float_array(f"{owner} params[{key!r}]['b']", b, (4 * units,))
    input_dim = rows - units
    w = _gates.reorder(w, "haiku", "keras", "lstm")
    bias = _gates.reorder(b, "haiku", "keras", "lstm")
    bias = bias.at[_FORGET * units : (_FORGET + 1) * units].add(1)
    return LSTMCell(units, param_dtype=_dtype(w)), {
        "kernel": w[:input_dim],
        "recurrent_kernel": w[input_dim:],
        "bias": bias,
    }


def _lstm_to_haiku(
    cell: LSTMCell, params: Mapping[str, Any], name: str
) -> dict:
    units = cell.units
    kernel = jnp.asarray(params["kernel"])
    bias = (
        jnp.asarray(params["bias"])
        if "bias" in params
        else jnp.zeros((4 * units,), kernel.dtype)
    )
    bias = bias.at[_FORGET * units : (_FORGET + 1) * units].add(-1)
    w = jnp.concatenate([kernel, jnp.asarray(params["recurrent_kernel"])])
    return {
        f"{name}/linear": {
            "w": _gates.reorder(w, "keras", "haiku", "lstm"),
            "b": _gates.reorder(bias, "keras", "haiku", "lstm"),
        }
    }


def _negate_update_gate(a: jax.Array, units: int) -> jax.Array:
    """Flips the sign of the z slice of a Keras-order array: exact, and its
    own inverse."""
    z = slice(_UPDATE * units, (_UPDATE + 1) * units)
    return a.at[..., z].set(-a[..., z])


def _gru_keras_from_haiku(a: jax.Array, units: int) -> jax.Array:
    return _negate_update_gate(
        _gates.reorder(a, "haiku", "keras", "gru"), units
    )


def _gru_haiku_from_keras(a: jax.Array, units: int) -> jax.Array:
    return _gates.reorder(
        _negate_update_gate(a, units), "keras", "haiku", "gru"
    )


def _gru_from_haiku(key: str, entry: Any) -> tuple[GRUCell, dict]:
    owner = f"hk.GRU ({key!r})"
    w_h = entry["w_h"]
    units = _peers.as_float_array(
        f"{owner} params[{key!r}]['w_h']", w_h, (None, None)
    ).shape[0]
    arrays = _peers.check_layout(
        owner,
        {key: entry},
        {
            key: {
                "w_i": (None, 3 * units),
                "w_h": (units, 3 * units),
                "b": (3 * units,),
            }
        },
    )[key]
    params = {
        "kernel": arrays["w_i"],
        "recurrent_kernel": arrays["w_h"],
        "bias": arrays["b"],
    }
    return GRUCell(
        units, reset_after=False, param_dtype=_dtype(arrays["w_i"])
    ), {k: _gru_keras_from_haiku(v, units) for k, v in params.items()}


def _gru_to_haiku(cell: GRUCell, params: Mapping[str, Any], name: str) -> dict:
    units = cell.units
    kernel = jnp.asarray(params["kernel"])
    bias = (
        jnp.asarray(params["bias"])
        if "bias" in params
        else jnp.zeros((3 * units,), kernel.dtype)
    )
    return {
        name: {
            "w_i": _gru_haiku_from_keras(kernel, units),
            "w_h": _gru_haiku_from_keras(
                jnp.asarray(params["recurrent_kernel"]), units
            ),
            "b": _gru_haiku_from_keras(bias, units),
        }
    }


def _vanilla_from_haiku(
    prefix: str, entries: Mapping[str, Any]
) -> tuple[SimpleRNNCell, dict]:
    owner = f"hk.VanillaRNN ({prefix!r})"
    hidden_key = prefix + "/linear_1"
    hidden = entries[hidden_key]
    if not isinstance(hidden, Mapping) or set(hidden) not in (
        {"w"},
        {"w", "b"},
    ):
        got = (
            sorted(hidden)
            if isinstance(hidden, Mapping)
            else (type(hidden).__name__)
        )
        raise ValueError(
            f"{owner} params[{hidden_key!r}] must hold ['w'] "
            f"or ['b', 'w'], got {got}."
        )
    units = _peers.as_float_array(
        f"{owner} params[{hidden_key!r}]['w']", hidden["w"], (None, None)
    ).shape[0]
    hidden_layout: dict[str, tuple[int, ...]] = {"w": (units, units)}
    if "b" in hidden:  # double_bias=True
        hidden_layout["b"] = (units,)
    arrays = _peers.check_layout(
        owner,
        entries,
        {
            prefix + "/linear": {"w": (None, units), "b": (units,)},
            hidden_key: hidden_layout,
        },
    )
    dense_i, dense_h = arrays[prefix + "/linear"], arrays[hidden_key]
    bias = dense_i["b"] + dense_h["b"] if "b" in dense_h else dense_i["b"]
    return SimpleRNNCell(
        units, activation="relu", param_dtype=_dtype(dense_i["w"])
    ), {"kernel": dense_i["w"], "recurrent_kernel": dense_h["w"], "bias": bias}


def _vanilla_to_haiku(
    cell: SimpleRNNCell, params: Mapping[str, Any], name: str
) -> dict:
    kernel = jnp.asarray(params["kernel"])
    zeros = jnp.zeros((cell.units,), kernel.dtype)
    bias = jnp.asarray(params["bias"]) if "bias" in params else zeros
    return {
        f"{name}/linear": {"w": kernel, "b": bias},
        f"{name}/linear_1": {
            "w": jnp.asarray(params["recurrent_kernel"]),
            "b": zeros,
        },
    }
