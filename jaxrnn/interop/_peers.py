"""What the Flax, Equinox and Haiku converters share.

Checks of the jaxrnn side (which cells, which settings a peer can express),
checks of nested ``{module: {array name: array}}`` dicts (Flax linen
variables, Flax NNX pure dicts, Haiku params), activation look-ups and the
GRU bias folds. Gate orders live in `_gates`. Arrays stay JAX arrays;
nothing here imports a peer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import core

from jaxrnn import activations
from jaxrnn.activations import ActivationLike
from jaxrnn.cells.gru import GRUCell

# A nested layout: module name -> array name -> shape.
Layout = Mapping[str, Mapping[str, tuple[int | None, ...]]]


def activation_name(fn: Callable[..., Any]) -> ActivationLike:
    """A peer's activation as the Keras name jaxrnn registers for that very
    function (``jax.nn.sigmoid`` -> ``'sigmoid'``), else the function itself,
    which jaxrnn cells accept as is."""
    for name in activations.names():
        if activations.get(name) is fn:
            return name
    return fn


def same_activation(cell_value: ActivationLike, fn: Any) -> bool:
    """Whether a jaxrnn activation setting resolves to the function `fn`."""
    return activations.get(cell_value) is fn


def describe_activation(value: ActivationLike) -> str:
    if isinstance(value, str) or value is None:
        return repr(value)
    return getattr(value, "__name__", repr(value))


def dtype_name(dtype: Any) -> str | None:
    """A dtype as its name ('float32'), None kept: hashable and equal to the
    cells' defaults."""
    return None if dtype is None else jnp.dtype(dtype).name


def cell_label(cell: Any) -> str:
    return f"{type(cell).__name__}(units={getattr(cell, 'units', '?')})"


def check_cell_type(
    cell: Any, peer: str, counterparts: Mapping[type, str]
) -> None:
    """Raises TypeError unless `cell` is exactly one of `counterparts`' types
    (subclasses may change the maths)."""
    if type(cell) not in counterparts:
        pairs = ", ".join(
            f"{t.__name__} ({name})" for t, name in counterparts.items()
        )
        raise TypeError(
            f"`cell` must be a jaxrnn cell with a {peer} "
            f"counterpart: {pairs}; got {type(cell).__name__}."
        )


def check_expressible(cell: Any, peer_cell: str) -> None:
    """Settings of a jaxrnn cell that no peer cell has: a matmul precision."""
    if cell.precision is not None:
        raise ValueError(
            f"{peer_cell} has no matmul precision setting; {cell_label(cell)} "
            f"has precision={cell.precision!r}, which would change its "
            "numbers. Convert a cell with precision=None."
        )


def check_fixed_activations(
    cell: Any,
    peer_cell: str,
    activation: str,
    recurrent_activation: str | None,
) -> None:
    """For peers whose activations are fixed: the cell must use those very
    functions."""
    wanted = [("activation", activation)]
    if recurrent_activation is not None:
        wanted.append(("recurrent_activation", recurrent_activation))
    for attribute, name in wanted:
        value = getattr(cell, attribute)
        if not same_activation(value, activations.get(name)):
            raise ValueError(
                f"{peer_cell} always uses {attribute} {name!r}; "
                f"{cell_label(cell)} has {attribute}="
                f"{describe_activation(value)}, which it cannot express."
            )


def check_template(
    cell: Any, module: Any, pairs: Sequence[tuple[str, str, Any]]
) -> None:
    """Checks a peer module given as a template agrees with `cell` on what
    decides the maths: `pairs` holds (peer attribute, cell attribute or
    description, wanted value), activations compared as functions."""
    for peer_attribute, cell_attribute, wanted in pairs:
        got = getattr(module, peer_attribute)
        if peer_attribute.endswith("_fn"):
            fits = same_activation(wanted, got)
            shown_got = describe_activation(got)
            shown_wanted = describe_activation(wanted)
        else:
            fits = got == wanted
            shown_got, shown_wanted = repr(got), repr(wanted)
        if not fits:
            raise ValueError(
                f"`module` ({type(module).__name__}) has {peer_attribute}="
                f"{shown_got}, but {cell_label(cell)} needs {shown_wanted} "
                f"({cell_attribute})."
            )


def check_reset_after(
    cell: Any, peer_cell: str, reset_after: bool, why: str
) -> None:
    if cell.reset_after != reset_after:
        raise ValueError(
            f"{peer_cell} {why}, so only GRUCell(reset_after={reset_after}) "
            f"has an exact counterpart; got {cell_label(cell)} with "
            f"reset_after={cell.reset_after}."
        )


def check_cell_params(cell: Any, params: Any) -> int:
    """Checks `params` fit `cell` (names, shapes, float dtypes); returns D."""
    if isinstance(params, Mapping) and "kernel" in params:
        shape = np.shape(params["kernel"])
        if len(shape) != 2:
            raise ValueError(
                f"{type(cell).__name__} params['kernel'] must "
                f"have shape (D, {cell.gates * cell.units}), got "
                f"{shape}."
            )
        input_dim = shape[0]
    else:
        input_dim = 0  # check_params below names what is missing
    cell.check_params(params, input_dim)
    for name, value in params.items():
        dtype = jnp.result_type(value)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{type(cell).__name__} params[{name!r}] must "
                f"have a floating dtype, got {dtype}."
            )
    return input_dim


def check_compute_dtype(
    cell: Any, params: Mapping[str, Any], peer_cell: str
) -> None:
    """Peers without a compute dtype compute in their weights' dtype."""
    if cell.dtype is None:
        return
    weights = jnp.result_type(params["kernel"])
    if jnp.dtype(cell.dtype) != weights:
        raise ValueError(
            f"{peer_cell} computes in its weights' dtype ({weights}); "
            f"{cell_label(cell)} has dtype={dtype_name(cell.dtype)!r}. Convert "
            "a cell with dtype=None or params of that dtype."
        )


def unwrap_mapping(name: str, value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"`{name}` must be a dict ({what}), got {type(value).__name__}."
        )
    return value


def check_layout(
    owner: str, params: Any, layout: Layout, hint: str = ""
) -> dict[str, dict[str, jax.Array]]:
    """Checks a nested dict against `layout` (None in a shape: any size).

    Returns the arrays as JAX arrays.
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{owner} params must be a dict with keys "
            f"{sorted(layout)}, got {type(params).__name__}."
        )
    missing = sorted(set(layout) - set(params))
    unexpected = sorted(set(params) - set(layout), key=str)
    if missing or unexpected:
        raise ValueError(
            f"{owner} params do not fit: missing {missing}, "
            f"unexpected {unexpected}; expected keys "
            f"{sorted(layout)}.{hint}"
        )
    arrays = {}
    for module, leaves in layout.items():
        where = f"{owner} params[{module!r}]"
        got = params[module]
        if not isinstance(got, Mapping) or set(got) != set(leaves):
            names = (
                sorted(got)
                if isinstance(got, Mapping)
                else (type(got).__name__)
            )
            raise ValueError(
                f"{where} must hold {sorted(leaves)}, got {names}."
            )
        arrays[module] = {}
        for leaf, shape in leaves.items():
            arrays[module][leaf] = as_float_array(
                f"{where}[{leaf!r}]", got[leaf], shape
            )
    return arrays


def rows_of(params: Any, module: str, leaf: str = "kernel") -> int | None:
    """The first size of ``params[module][leaf]`` if that is a matrix: the
    input size the other arrays must share (None lets the check name what is
    wrong)."""
    try:
        shape = np.shape(params[module][leaf])
    except (KeyError, TypeError, IndexError):
        return None
    return shape[0] if len(shape) == 2 else None


def as_float_array(
    where: str, value: Any, shape: Sequence[int | None]
) -> jax.Array:
    """`value` as a JAX array after checking its dtype and shape."""
    dtype = jnp.result_type(value)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{where} must have a floating dtype, got {dtype}.")
    got = tuple(np.shape(value))
    if len(got) != len(shape) or any(
        want is not None and want != have for want, have in zip(shape, got)
    ):
        want = ", ".join("*" if size is None else str(size) for size in shape)
        want = f"({want},)" if len(shape) == 1 else f"({want})"
        raise ValueError(f"{where} must have shape {want}, got {got}.")
    return jnp.asarray(value)


def split_gru_bias(
    cell: GRUCell, params: Mapping[str, Any], dtype: Any
) -> tuple[jax.Array, jax.Array]:
    """A reset_after GRU's bias rows (input, recurrent), zeros without one."""
    if "bias" not in params:
        zeros = jnp.zeros((3 * cell.units,), dtype)
        return zeros, zeros
    bias = jnp.asarray(params["bias"])
    return bias[0], bias[1]


def fold_gru_gate_biases(
    input_bias: jax.Array, recurrent_bias: jax.Array, units: int
) -> jax.Array:
    """Keras-order (z, r, h) input bias with the recurrent z and r biases
    added: both enter the gates as plain sums; only the candidate's recurrent
    bias sits inside ``r * (...)``."""
    gates = input_bias[: 2 * units] + recurrent_bias[: 2 * units]
    return jnp.concatenate([gates, input_bias[2 * units :]])


def is_concrete(value: Any) -> bool:
    return not isinstance(value, core.Tracer)


def check_zero_slice(
    cell: Any, value: jax.Array, where: str, peer_cell: str, why: str
) -> None:
    """Raises unless `value` is all zeros (it has no place in the peer)."""
    if not is_concrete(value):
        raise ValueError(
            f"Converting {cell_label(cell)} to {peer_cell} "
            f"checks that {where} is zero, which needs concrete "
            "params, not traced ones; convert outside jit."
        )
    largest = float(jnp.max(jnp.abs(value))) if value.size else 0.0
    if largest != 0.0:
        raise ValueError(
            f"{peer_cell} {why}, so {where} must be zero for an exact "
            f"conversion; got max |value| = {largest:.3g} in "
            f"{cell_label(cell)}'s params. No exact counterpart exists."
        )
