"""The cell contract, in tiers, and the checks that pick a tier.

A cell is anything with `init`, `initial_carry` and `__call__` (`Cell`).
Further methods let `jaxrnn.rnn` take a faster path with the same
numbers; each tier is a `typing.Protocol` here, with the check `rnn` uses
beside it. A cell that has some of a tier's methods but not all gets a
TypeError naming what is missing, instead of silently running the plain
step (a misspelt ``apply_gates`` used to do that). docs/writing-cells.md
describes the tiers for whoever writes a cell.

Dropout masks are called ``dropout`` in the protocol's signatures:
"mask" means the validity mask of `rnn` only.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax import lax

from jaxrnn._masking import keep_where
from jaxrnn.typing import Carry, Params, PRNGKey


@runtime_checkable
class Cell(Protocol):
    """The plain tier: `rnn` calls the whole step at every time step."""

    def init(self, key: PRNGKey, input_dim: int) -> Params:
        """Params for inputs of `input_dim` features."""
        ...

    def initial_carry(
        self, batch_shape: tuple[int, ...] = (), dtype: Any = None
    ) -> Carry:
        """The zero carry, leaves `(*batch_shape, ...)`."""
        ...

    def __call__(
        self,
        params: Params,
        carry: Carry,
        x: jax.Array,
        *,
        key: PRNGKey | None = None,
        training: bool = False,
    ) -> tuple[Carry, jax.Array]:
        """One step: `(new_carry, y)`."""
        ...


@runtime_checkable
class StackableCell(Cell, Protocol):
    """A cell that `StackedCells` can put under another one."""

    @property
    def output_size(self) -> int:
        """H, the size of the output y (the next cell's input)."""
        ...


class ProjectedCell(Cell, Protocol):
    """The hoisted input projection: one matmul over the inputs of every
    step, then a loop over the rest of the step. `dropout_masks` is
    optional (None: no dropout)."""

    def project_inputs(
        self, params: Params, xs: jax.Array, dropout: Any = None
    ) -> jax.Array:
        """`(..., D) -> (..., P)`: the input half of the step."""
        ...

    def step_projected(
        self,
        params: Params,
        carry: Carry,
        projected: jax.Array,
        dropout: Any = None,
    ) -> tuple[Carry, jax.Array]:
        """The recurrent half of a step, from `project_inputs`' output."""
        ...


class SplitStepCell(ProjectedCell, Protocol):
    """The split step: `step_projected` is ``apply_gates(carry, projected,
    project_recurrent(params, recurrent_input(carry, dropout, dtype)))``
    with one matmul in `project_recurrent` and only elementwise work in
    `apply_gates`; `rnn` then differentiates a sequence by its hand-written
    backward pass. A cell opts out with ``split_step = False``; one whose
    ``gates_take_keep`` is true takes ``apply_gates(..., keep=)`` and holds
    a masked row's carry itself (module function `apply_gates`)."""

    def recurrent_input(
        self, carry: Carry, dropout: Any, dtype: Any
    ) -> jax.Array:
        """The `(..., H)` vector the recurrent kernel multiplies."""
        ...

    def project_recurrent(self, params: Params, h_in: jax.Array) -> jax.Array:
        """`(..., H) -> (..., P)`: the step's one recurrent matmul."""
        ...

    def apply_gates(
        self, carry: Carry, projected: jax.Array, recurrent: jax.Array
    ) -> tuple[Carry, jax.Array]:
        """The elementwise rest of the step: `(new_carry, y)`."""
        ...


class ParallelCell(Cell, Protocol):
    """A recurrence linear in its carry, ``h_t = a_t * h_{t-1} + b_t``:
    `rnn(..., parallel=True)` runs it as an associative scan. A cell with
    ``log_space = True`` gives `parallel_log_coefficients` instead."""

    def parallel_coefficients(
        self,
        params: Params,
        xs: jax.Array,
        *,
        key: PRNGKey | None = None,
        training: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """`a` and `b` of every step, each `(T, B, *state)`."""
        ...


PROJECTED_STEP = ("project_inputs", "step_projected")
SPLIT_STEP = ("recurrent_input", "project_recurrent", "apply_gates")


def _tier(cell: Any, names: tuple[str, ...], tier: str) -> bool:
    """Whether `cell` has all of `names`; TypeError if only some."""
    missing = [name for name in names if not hasattr(cell, name)]
    if not missing:
        return True
    if len(missing) < len(names):
        present = [name for name in names if name not in missing]
        raise TypeError(
            f"{type(cell).__name__} has {', '.join(present)} but not "
            f"{', '.join(missing)}: the {tier} needs all of "
            f"{', '.join(names)} (see docs/writing-cells.md). Add the "
            "missing methods, or rename the others if they mean something "
            "else."
        )
    return False


def has_projected_step(cell: Any) -> bool:
    """Whether `rnn` can hoist `cell`'s input projection out of the loop
    (`ProjectedCell`)."""
    return _tier(cell, PROJECTED_STEP, "projected step")


def has_split_step(cell: Any) -> bool:
    """Whether `cell` offers the split step (`SplitStepCell`) and does not
    opt out with ``split_step = False``."""
    if not getattr(cell, "split_step", True):
        return False
    split = _tier(cell, SPLIT_STEP, "split step")
    if split and not has_projected_step(cell):
        raise TypeError(
            f"{type(cell).__name__} has the split step's "
            f"{', '.join(SPLIT_STEP)} but not project_inputs and "
            "step_projected, which the split step builds on (see "
            "docs/writing-cells.md), or set split_step = False."
        )
    return split


def draw_dropout(
    cell: Any,
    key: PRNGKey | None,
    batch_shape: tuple[int, ...],
    input_dim: int,
    *,
    training: bool,
) -> Any:
    """`cell.dropout_masks(...)` for a projected-step cell that draws
    dropout masks; None for one that has no dropout."""
    draw = getattr(cell, "dropout_masks", None)
    if draw is None:
        return None
    return draw(key, batch_shape, input_dim, training=training)


def supports_parallel(cell: Any) -> bool:
    """Whether `rnn(cell, ..., parallel=True)` can run `cell`
    (`ParallelCell`; every cell of a `StackedCells`)."""
    from jaxrnn.cells.stacked import StackedCells  # it imports this module

    if isinstance(cell, StackedCells):
        return all(supports_parallel(c) for c in cell.cells)
    if hasattr(cell, "parallel_run"):
        return True
    if not hasattr(cell, "parallel_coefficients"):
        return False
    return not getattr(cell, "log_space", False) or hasattr(
        cell, "parallel_log_coefficients"
    )


def apply_gates(
    cell: Any,
    carry: Carry,
    projected: jax.Array,
    recurrent: jax.Array,
    keep: jax.Array | None,
) -> tuple[Carry, jax.Array]:
    """A `SplitStepCell`'s elementwise rest of a step, ``(new carry, y)``;
    where `keep` (bool (B,) or None) is False the carry comes back
    unchanged and y is unspecified. A cell whose ``gates_take_keep`` is
    true holds it itself (through its gates: a select of the carry after
    the step let XLA:CPU split and copy the gate kernels of an unrolled
    chunk); others get a select."""
    if keep is None:
        return cell.apply_gates(carry, projected, recurrent)
    if getattr(cell, "gates_take_keep", False):
        return cell.apply_gates(carry, projected, recurrent, keep=keep)
    new_carry, y = cell.apply_gates(carry, projected, recurrent)
    return keep_where(keep, new_carry, carry), y


def gates_add_projections(
    cell: Any,
    carry: Carry,
    projected: Any,
    recurrent: Any,
    keep: Any = None,
) -> bool:
    """Whether `cell`'s step reads the two projections only through their
    sum, as the LSTM's and SimpleRNN's do (the GRU's does not: its reset
    gate scales the recurrent one alone): in the step traced on abstract
    values (ShapeDtypeStructs or arrays; nothing is computed), with
    `keep` (B,) where masked runs, each of the two is used once, by the
    same addition. A step that adds them and also reads one of them
    elsewhere, even where no gradient flows (a comparison,
    `stop_gradient`), does not qualify. The split-step scan then saves
    their sum alone."""
    abstract = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(jnp.shape(leaf), leaf.dtype),
        (keep, carry, projected, recurrent),
    )
    jaxpr = jax.make_jaxpr(lambda k, c, p, r: apply_gates(cell, c, p, r, k))(
        *abstract
    ).jaxpr
    pair = jaxpr.invars[-2:]
    readers = [
        eqn
        for eqn in jaxpr.eqns
        if any(v is u for v in eqn.invars for u in pair)
    ]
    return (
        len(jax.tree.leaves(abstract[2:])) == 2
        and len(readers) == 1
        and readers[0].primitive is lax.add_p
        and sorted(map(id, readers[0].invars)) == sorted(map(id, pair))
        and not any(v is u for v in jaxpr.outvars for u in pair)
    )
