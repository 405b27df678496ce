"""What every built-in cell's step call shares: the checks of its
arguments at the public boundary (named after the cell's own class), and
the whole step composed of its two halves (`projected_call`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxrnn._validation import check_floating


class _Required:
    """The default of a step's positional arguments, so that a call missing
    one names the cell's own class (Python's message names the class that
    defines ``__call__``, such as a private base)."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


def check_call_arguments(cell: Any, params: Any, carry: Any, x: Any) -> None:
    """Raises TypeError, naming `cell`'s class, unless the step got all of
    ``(params, carry, x)``."""
    given = {"params": params, "carry": carry, "x": x}
    missing = [name for name, value in given.items() if value is REQUIRED]
    if missing:
        name = type(cell).__name__
        raise TypeError(
            f"{name} takes (params, carry, x), got {3 - len(missing)} of "
            f"them; missing {missing}. Call it as cell(params, carry, x) "
            f"with params = cell.init(key, input_dim) and carry = "
            f"cell.initial_carry(batch_shape)."
        )


def check_step_input(
    cell: Any, params: Any, carry: Any, x: jax.Array, features: str = "D"
) -> None:
    """Checks one step's input `x`, (..., `features`), `params` against
    its feature size, and `carry` against the cell's initial carry for x's
    leading (batch) axes."""
    if not hasattr(x, "ndim"):
        raise TypeError(
            f"`x` must be one array (..., {features}), got "
            f"{type(x).__name__}: a {type(cell).__name__} is called as "
            "cell(params, carry, x), the carry before the input."
        )
    check_floating("x", x)
    if x.ndim < 1:
        raise ValueError(
            f"`x` must have shape (..., {features}), got {x.shape}."
        )
    cell.check_params(params, x.shape[-1])
    batch_shape = x.shape[:-1]
    check_step_carry(
        cell, carry, x, batch_shape, initial_carry_shapes(cell, batch_shape)
    )


# ``check_input(params, carry, x) -> (batch_shape, input_dim)``: checks a
# step's arguments against the cell, and splits x's shape into its batch
# axes and what `dropout_masks` takes as the input's size.
InputCheck = Callable[[Any, Any, jax.Array], tuple[tuple[int, ...], Any]]


def projected_call(
    cell: Any,
    params: Any,
    carry: Any,
    x: Any,
    *,
    key: jax.Array | None = None,
    training: bool = False,
    dropout: bool = False,
    features: str = "D",
    check_input: InputCheck | None = None,
) -> tuple[Any, jax.Array]:
    """The whole step ``cell(params, carry, x)`` of a cell with the
    projected step, which every built-in cell's ``__call__`` returns: the
    arguments checked, the dropout masks drawn, then ``step_projected`` of
    ``project_inputs``, so that the step-by-step and the hoisted paths of
    `jaxrnn.rnn` compute the same thing.

    Args:
      cell: the cell.
      params, carry, x: the step's arguments (`REQUIRED` where missing).
      key, training: for the dropout masks.
      dropout: the cell draws dropout masks (``cell.dropout_masks``, in
        ``cell.compute_dtype``); without, `key` and `training` are unused.
      features: the letter for x's last axis in error messages.
      check_input: checks the step's arguments; default: x is
        (..., `features`), a vector per batch entry (`check_step_input`).
    """
    with jax.named_scope(f"jaxrnn.{type(cell).__name__}"):
        check_call_arguments(cell, params, carry, x)
        if check_input is None:
            check_step_input(cell, params, carry, x, features)
            batch_shape, input_dim = x.shape[:-1], x.shape[-1]
        else:
            batch_shape, input_dim = check_input(params, carry, x)
        masks = (
            cell.dropout_masks(
                key,
                batch_shape,
                input_dim,
                training=training,
                dtype=cell.compute_dtype(params, x),
            )
            if dropout
            else None
        )
        projected = cell.project_inputs(params, x, masks)
        return cell.step_projected(params, carry, projected, masks)


def initial_carry_shapes(cell: Any, batch_shape: tuple[int, ...]) -> Any:
    """`jax.eval_shape` of ``cell.initial_carry(batch_shape)``, remembered
    per (cell, batch shape): tracing it at every eager step tripled the
    time of a small step's call."""
    try:
        return _cached_carry_shapes(cell, batch_shape)
    except TypeError:  # a cell with an unhashable field
        return jax.eval_shape(lambda: cell.initial_carry(batch_shape))


@functools.lru_cache(maxsize=256)
def _cached_carry_shapes(cell: Any, batch_shape: tuple[int, ...]) -> Any:
    return jax.eval_shape(lambda: cell.initial_carry(batch_shape))


def check_step_carry(
    cell: Any,
    carry: Any,
    x: jax.Array,
    batch_shape: tuple[int, ...],
    expected: Any,
) -> None:
    """Checks a step's `carry` has the structure and leaf shapes of
    `expected` (the cell's initial carry for x's batch axes) and floating
    leaves: a carry of the wrong structure would be unpacked into the wrong
    pieces (one (2, H) array as an LSTM's (h, c)), one of other batch axes
    would broadcast against x."""
    name = type(cell).__name__
    got_def, want_def = jax.tree.structure(carry), jax.tree.structure(expected)
    if got_def != want_def:
        raise ValueError(
            f"{name} `carry` must have the structure of "
            f"{name}.initial_carry(), {want_def} ({want_def.num_leaves} "
            f"array(s)), got {got_def} ({got_def.num_leaves} array(s))."
        )
    for i, (got, want) in enumerate(
        zip(jax.tree.leaves(carry), jax.tree.leaves(expected))
    ):
        if tuple(np.shape(got)) != want.shape:
            raise ValueError(
                f"{name} `carry` leaf {i} must have shape {want.shape} for "
                f"`x` of shape {x.shape}, got {tuple(np.shape(got))}: the "
                f"carry's leading axes are x's batch axes {batch_shape}. "
                "Give x and the carry the same batch axes (one step's x is "
                "(..., features), with no time axis)."
            )
        check_floating("carry", got)
