"""Equinox cells (``eqx.nn.LSTMCell``, ``eqx.nn.GRUCell``) <-> jaxrnn cells
and params.

Equinox stores torch's layout: ``weight_ih`` `(G*H, D)` is the transposed
``kernel`` `(D, G*H)`, ``weight_hh`` `(G*H, H)` the transposed
``recurrent_kernel``:

=====================  =======================================================
equinox                jaxrnn
=====================  =======================================================
``nn.LSTMCell``        ``LSTMCell(H, use_bias=use_bias)``; gates i, f, g, o
                       are Keras' i, f, c, o; ``bias`` (4H,) is ``bias``.
``nn.GRUCell``         ``GRUCell(H, reset_after=True, use_bias=use_bias)``;
                       gates (r, z, n) reordered to Keras' (z, r, h);
                       ``bias`` (3H,) is bias row 0, ``[0, 0, bias_n]`` row 1.
=====================  =======================================================

Equinox's GRU is ``n = tanh(W_in x + b_in + r * (W_hn h + bias_n))``, Keras'
``reset_after=True`` GRU with no recurrent bias on the gates, so `to_equinox`
adds the recurrent z and r biases to the input ones and writes the
candidate's to ``bias_n``. A ``reset_after=False`` GRU and the
``SimpleRNNCell`` have no Equinox counterpart. Equinox fixes the activations
(sigmoid gates, tanh) and the carry order ``(h, c)``, as jaxrnn has it; its
cells take one example at a time (``jax.vmap`` them over a batch). Equinox
is imported only when a function here is called.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.interop import _gates, _peers

_COUNTERPARTS = {LSTMCell: "eqx.nn.LSTMCell", GRUCell: "eqx.nn.GRUCell"}


def _eqx():
    import equinox as eqx  # Lazy: Equinox is an optional dependency.

    return eqx


def _kinds() -> dict[type, type]:
    eqx = _eqx()
    return {eqx.nn.LSTMCell: LSTMCell, eqx.nn.GRUCell: GRUCell}


def from_equinox(module: Any) -> tuple[Any, dict[str, jax.Array]]:
    """Converts an Equinox LSTM or GRU cell into a jaxrnn cell and params.

    Args:
      module: an ``eqx.nn.LSTMCell`` or ``eqx.nn.GRUCell``.

    Returns:
      ``(cell, params)``: ``LSTMCell(H)`` or ``GRUCell(H, reset_after=True)``
      (``use_bias`` as the module's, ``param_dtype`` its weights' dtype) and
      params in Keras' layout (see the module docstring).

    Raises:
      TypeError: `module` is not one of those cells, or holds non-float
        arrays.
      ValueError: its arrays do not fit its ``input_size`` and
        ``hidden_size``.

    Example:
      >>> import jax, equinox as eqx
      >>> module = eqx.nn.GRUCell(3, 4, key=jax.random.key(0))
      >>> cell, params = from_equinox(module)
      >>> import jaxrnn
      >>> cell == jaxrnn.GRUCell(4)
      True
      >>> params["kernel"].shape, params["bias"].shape
      ((3, 12), (2, 12))
    """
    kinds = _kinds()
    if type(module) not in kinds:
        got = (
            "the class itself, not an instance"
            if isinstance(module, type)
            else type(module).__name__
        )
        raise TypeError(
            "`module` must be an eqx.nn.LSTMCell or "
            f"eqx.nn.GRUCell instance, got {got}."
        )
    kind = kinds[type(module)]
    units, input_dim = module.hidden_size, module.input_size
    rows = kind.gates * units
    owner = (
        f"eqx.nn.{type(module).__name__}(input_size={input_dim}, "
        f"hidden_size={units}, use_bias={module.use_bias})"
    )
    w_ih = _peers.as_float_array(
        f"{owner}.weight_ih", module.weight_ih, (rows, input_dim)
    )
    w_hh = _peers.as_float_array(
        f"{owner}.weight_hh", module.weight_hh, (rows, units)
    )
    cell = kind(
        units,
        use_bias=module.use_bias,
        param_dtype=_peers.dtype_name(w_ih.dtype),
        **({"reset_after": True} if kind is GRUCell else {}),
    )
    params = {"kernel": w_ih.T, "recurrent_kernel": w_hh.T}
    if module.use_bias:
        bias = _peers.as_float_array(f"{owner}.bias", module.bias, (rows,))
        if kind is GRUCell:
            bias_n = _peers.as_float_array(
                f"{owner}.bias_n", module.bias_n, (units,)
            )
            recurrent = jnp.concatenate(  # (r, z, n), reordered below
                [jnp.zeros((2 * units,), bias_n.dtype), bias_n]
            )
            bias = jnp.stack([bias, recurrent])
        params["bias"] = bias
    kind_name = "gru" if kind is GRUCell else "lstm"
    return cell, {
        k: _gates.reorder(v, "equinox", "keras", kind_name)
        for k, v in params.items()
    }


def to_equinox(cell: Any, params: dict[str, Any], module: Any = None) -> Any:
    """Converts a jaxrnn LSTM or GRU cell and params into an Equinox cell.

    Args:
      cell: a jaxrnn ``LSTMCell`` or ``GRUCell`` (``reset_after=True``) with
        Equinox's activations (tanh, sigmoid gates), ``precision=None`` and
        ``dtype`` None or the params' dtype.
      params: the cell's params (from ``init`` or `from_equinox`).
      module: None to build a new ``eqx.nn.LSTMCell`` or ``eqx.nn.GRUCell``
        (without running its initializers), or an instance to copy with
        `params` in it; it must have the same ``input_size``,
        ``hidden_size`` and ``use_bias``.

    Returns:
      The Equinox module: ``module(x, carry)`` for one unbatched step,
      carry ``(h, c)`` for the LSTM.

    Raises:
      TypeError: `cell` has no Equinox counterpart (``SimpleRNNCell``:
        Equinox has no Elman cell), `module` is not its counterpart, or
        `params` is not a dict of float arrays.
      ValueError: `params` does not fit `cell`, `cell` is a
        ``reset_after=False`` GRU or has other activations, a precision or
        a compute dtype, or `module` disagrees with `cell`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import jaxrnn
      >>> cell = jaxrnn.LSTMCell(4)
      >>> module = to_equinox(cell, cell.init(jax.random.key(0), 3))
      >>> h, c = module(jnp.ones(3), (jnp.zeros(4), jnp.zeros(4)))
      >>> type(module).__name__, module.weight_ih.shape, h.shape
      ('LSTMCell', (16, 3), (4,))
    """
    eqx = _eqx()
    _peers.check_cell_type(cell, "Equinox", _COUNTERPARTS)
    peer = f"equinox.nn.{type(cell).__name__}"
    _peers.check_expressible(cell, peer)
    input_dim = _peers.check_cell_params(cell, params)
    _peers.check_fixed_activations(cell, peer, "tanh", "sigmoid")
    _peers.check_compute_dtype(cell, params, peer)
    if isinstance(cell, GRUCell):
        _peers.check_reset_after(
            cell,
            peer,
            True,
            "applies the reset gate after the recurrent "
            "matmul, n = tanh(W_in x + b_in + r * (W_hn h + bias_n))",
        )
    arrays = _to_arrays(cell, params)
    module = _target_module(cell, module, input_dim, arrays["weight_ih"].dtype)
    names = list(arrays)
    return eqx.tree_at(
        lambda m: [getattr(m, n) for n in names],
        module,
        [arrays[n] for n in names],
    )


def _to_arrays(cell: Any, params: dict[str, Any]) -> dict[str, jax.Array]:
    units = cell.units
    kind = "gru" if isinstance(cell, GRUCell) else "lstm"

    def to_equinox_order(array: jax.Array) -> jax.Array:
        return _gates.reorder(array, "keras", "equinox", kind)

    kernel = jnp.asarray(params["kernel"])
    arrays = {
        "weight_ih": to_equinox_order(kernel).T,
        "weight_hh": to_equinox_order(
            jnp.asarray(params["recurrent_kernel"])
        ).T,
    }
    if not cell.use_bias:
        return arrays
    if isinstance(cell, LSTMCell):
        arrays["bias"] = to_equinox_order(jnp.asarray(params["bias"]))
        return arrays
    input_bias, recurrent_bias = _peers.split_gru_bias(
        cell, params, kernel.dtype
    )
    folded = _peers.fold_gru_gate_biases(input_bias, recurrent_bias, units)
    arrays["bias"] = to_equinox_order(folded)
    arrays["bias_n"] = recurrent_bias[2 * units :]
    return arrays


def _target_module(cell: Any, module: Any, input_dim: int, dtype: Any) -> Any:
    eqx = _eqx()
    cls = {LSTMCell: eqx.nn.LSTMCell, GRUCell: eqx.nn.GRUCell}[type(cell)]
    if module is None:
        # Shapes only: every array is replaced, so skip the initializers.
        return eqx.filter_eval_shape(
            cls,
            input_dim,
            cell.units,
            use_bias=cell.use_bias,
            dtype=dtype,
            key=jax.random.key(0),
        )
    if type(module) is not cls:
        got = (
            "the class itself, not an instance"
            if isinstance(module, type)
            else type(module).__name__
        )
        raise TypeError(
            f"`module` must be an eqx.nn.{cls.__name__} instance "
            f"for {_peers.cell_label(cell)}, got {got}."
        )
    _peers.check_template(
        cell,
        module,
        [
            ("input_size", "params['kernel'] rows", input_dim),
            ("hidden_size", "units", cell.units),
            ("use_bias", "use_bias", cell.use_bias),
        ],
    )
    return module
