"""Several cells run as one, Keras' ``RNN([cell, ...])`` (StackedRNNCells)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn._validation import (
    batch_shape_of,
    check_floating,
    check_prng_key,
    describe,
)
from jaxrnn.cells._step import REQUIRED, check_call_arguments
from jaxrnn.protocols import draw_dropout, has_projected_step


def _output_size(cell: Any) -> int:
    size = getattr(cell, "output_size", None)
    if size is None:
        raise TypeError(
            f"{type(cell).__name__} needs an `output_size` to be "
            "stacked under another cell."
        )
    return size


@dataclasses.dataclass(frozen=True, init=False)
class StackedCells:
    """Runs cells one after another within each time step.

    The first cell sees the input, each next cell the previous cell's output;
    the output is the last cell's. Params are a list with one entry per cell,
    the carry a tuple with one entry per cell.

    Args:
      cells: a non-empty sequence of cells (built-in or your own). Every cell
        but the last needs an ``output_size``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import LSTMCell, GRUCell
      >>> cell = StackedCells([LSTMCell(8), GRUCell(4)])
      >>> params = cell.init(jax.random.key(0), 3)
      >>> carry, y = cell(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
      >>> y.shape, len(carry)
      ((2, 4), 2)
    """

    cells: tuple[Any, ...]

    def __init__(self, cells: Sequence[Any]):
        if isinstance(cells, (str, bytes)) or not isinstance(cells, Sequence):
            raise TypeError(
                f"`cells` must be a list of cells, got {type(cells).__name__}."
            )
        if len(cells) == 0:
            raise ValueError("`cells` must hold at least one cell, got [].")
        for i, cell in enumerate(cells):
            missing = [
                m for m in ("init", "initial_carry") if not hasattr(cell, m)
            ]
            if missing or not callable(cell):
                raise TypeError(
                    f"cells[{i}] ({type(cell).__name__}) is not a "
                    "cell: it needs init, initial_carry and "
                    "__call__."
                )
        for cell in cells[:-1]:
            _output_size(cell)
        object.__setattr__(self, "cells", tuple(cells))

    @property
    def input_ndim(self) -> int:
        """Feature axes of one step's input: the first cell's (1 for
        vectors, 3 for a ConvLSTM2DCell's (rows, cols, channels))."""
        return getattr(self.cells[0], "input_ndim", 1)

    @property
    def state_size(self) -> tuple[Any, ...]:
        """Keras' cell protocol: each cell's state size."""
        return tuple(getattr(c, "state_size", None) for c in self.cells)

    @property
    def output_size(self) -> int | None:
        """The last cell's output size."""
        return getattr(self.cells[-1], "output_size", None)

    def _input_dims(self, input_dim: int) -> list[int]:
        return [input_dim] + [_output_size(c) for c in self.cells[:-1]]

    def init(self, key: jax.Array, input_dim: int) -> list[Any]:
        """Returns a list with each cell's params, in order."""
        check_prng_key("key", key)
        keys = jax.random.split(key, len(self.cells))
        return [
            cell.init(k, d)
            for cell, k, d in zip(
                self.cells, keys, self._input_dims(input_dim)
            )
        ]

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = None
    ) -> tuple[Any, ...]:
        """A tuple with each cell's initial carry (an int B means (B,))."""
        batch_shape = batch_shape_of(batch_shape)
        # A custom cell's initial_carry may take batch_shape alone, as
        # `rnn` calls it; the dtype goes only where one was asked for.
        return tuple(
            c.initial_carry(batch_shape)
            if dtype is None
            else c.initial_carry(batch_shape, dtype)
            for c in self.cells
        )

    def _check_params(self, params: Any) -> None:
        if not isinstance(params, (list, tuple)) or len(params) != len(
            self.cells
        ):
            raise ValueError(
                f"StackedCells params must be a list of "
                f"{len(self.cells)} entries (one per cell), got "
                f"{type(params).__name__} of length "
                f"{len(params) if hasattr(params, '__len__') else '?'}."
            )

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises if the list has the wrong length or any cell's params are off."""
        self._check_params(params)
        for cell, p, d in zip(self.cells, params, self._input_dims(input_dim)):
            if hasattr(cell, "check_params"):
                cell.check_params(p, d)

    def __call__(
        self,
        params: Sequence[Any] = REQUIRED,
        carry: tuple[Any, ...] = REQUIRED,
        x: ArrayLike = REQUIRED,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[tuple[Any, ...], jax.Array]:
        """Advances every cell by one step.

        Args:
          params: list of each cell's params.
          carry: tuple of each cell's carry.
          x: (..., D) input.
          key: PRNG key, split into one key per cell.
          training: passed to every cell.

        Returns:
          (tuple of new carries, the last cell's output).

        Raises:
          TypeError, ValueError: an argument is missing, or `params` or
            `carry` do not hold one entry per cell (each cell checks its
            own entry).
        """
        with jax.named_scope("jaxrnn.StackedCells"):
            check_call_arguments(self, params, carry, x)
            check_floating("x", x)
            self._check_params(params)
            if not isinstance(carry, (tuple, list)) or len(carry) != len(
                self.cells
            ):
                raise ValueError(
                    f"StackedCells `carry` must be a tuple of "
                    f"{len(self.cells)} entries (one per cell, as "
                    f"initial_carry returns), got {describe(carry)}."
                )
            keys = self._keys(key)
            new_carry, y = [], x
            for cell, p, c, k in zip(self.cells, params, carry, keys):
                c, y = cell(p, c, y, key=k, training=training)
                new_carry.append(c)
            return tuple(new_carry), jnp.asarray(y)

    def _keys(self, key):
        if key is None:
            return [None] * len(self.cells)
        return list(jax.random.split(key, len(self.cells)))

    # The projected step (jaxrnn.protocols): the first cell's input
    # projection is hoisted; every other cell steps on the output below it.
    def dropout_masks(
        self, key, batch_shape, input_dim, *, training, dtype=None
    ):
        """Per cell: its dropout masks (projected-step cells) or
        (key, training) for a plain cell to draw its own."""
        dropout = []
        for cell, k, d in zip(
            self.cells, self._keys(key), self._input_dims(input_dim)
        ):
            if not has_projected_step(cell):
                dropout.append((k, training))
            elif dtype is not None and hasattr(cell, "dropout_masks"):
                dropout.append(
                    cell.dropout_masks(
                        k, batch_shape, d, training=training, dtype=dtype
                    )
                )
            else:
                dropout.append(
                    draw_dropout(cell, k, batch_shape, d, training=training)
                )
        return tuple(dropout)

    def project_inputs(self, params, xs, dropout=None):
        """The first cell's input projection (or the inputs unchanged)."""
        first = self.cells[0]
        if has_projected_step(first):
            return first.project_inputs(params[0], xs, dropout and dropout[0])
        return xs

    def step_projected(self, params, carry, projected, dropout=None):
        """One step of every cell, the first from its projected input."""
        per_cell = dropout or (None,) * len(self.cells)
        new_carry = []
        x = projected
        for i, (cell, p, c, m) in enumerate(
            zip(self.cells, params, carry, per_cell)
        ):
            if not has_projected_step(cell):
                key, training = m if m is not None else (None, False)
                c, x = cell(p, c, x, key=key, training=training)
            else:
                if i > 0:
                    x = cell.project_inputs(p, x, m)
                c, x = cell.step_projected(p, c, x, m)
            new_carry.append(c)
        return tuple(new_carry), x
