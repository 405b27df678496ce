"""The engines `rnn` runs a cell by, and the choice between them.

Each takes the cell, params, inputs, a time-major step mask and a batched
carry, with `RunOptions`; `rnn` (jaxrnn/_rnn.py) has checked them all.
The split-step scan runs the cell's hand-written backward pass
(jaxrnn/_fused.py, planned by jaxrnn/_fused_plan.py), the parallel scan
its associative form (jaxrnn/_parallel.py), and the plain chunked scan
(jaxrnn/_scan.py) any cell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from jaxrnn._fused import split_step_scan
from jaxrnn._fused_plan import plan_split_step
from jaxrnn._masking import keep_where
from jaxrnn._scan import Step, run_scan
from jaxrnn.protocols import (
    apply_gates,
    draw_dropout,
    has_projected_step,
    has_split_step,
)

# Steps per chunk of the hoisted input projection, one (K*B, D) x (D, G*H)
# GEMM each, in the plain and the split-step scan: a whole-sequence
# projection page-faults on every call, 8-step chunks train slower
# (docs/design-notes.md#why-chunks-and-why-4).
CHUNK_STEPS = 4


def _cell_step_functions(
    cell: Any,
    params: Any,
    key: jax.Array | None,
    training: bool,
    batch: int,
    features: Any,
) -> tuple[Callable[[jax.Array], jax.Array], Step]:
    """Returns (project, step): the hoisted input half and the recurrent
    half, ``step(carry, x, keep) -> (carry, y)``; where `keep` (bool (B,)
    or None) is False the carry comes back unchanged."""
    if not has_projected_step(cell):

        def whole_step(carry, x):
            # The same key at every step: a cell that draws its dropout masks
            # from it reuses one mask per sequence, as Keras does.
            return cell(params, carry, x, key=key, training=training)

        return (lambda xs: xs), _held(cell, whole_step)
    dropout = draw_dropout(cell, key, (batch,), features, training=training)

    def project(xs):
        return cell.project_inputs(params, xs, dropout)

    if not has_split_step(cell):
        return project, _held(
            cell,
            lambda carry, projected: cell.step_projected(
                params, carry, projected, dropout
            ),
        )

    def split_step(carry, projected, keep):
        h_in = cell.recurrent_input(carry, dropout, projected.dtype)
        return apply_gates(
            cell,
            carry,
            projected,
            cell.project_recurrent(params, h_in),
            keep,
        )

    return project, split_step


def _held(cell: Any, cell_step: Callable[[Any, Any], Any]) -> Step:
    """``step(carry, x, keep)`` from ``cell_step(carry, x)``, its carry
    selected where `keep` is False, and its output checked to be a
    pair."""

    def step(carry, x, keep):
        out = cell_step(carry, x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            shape = getattr(out, "shape", None)
            got = (
                type(out).__name__
                if shape is None
                else f"an array of shape {tuple(shape)}"
            )
            raise ValueError(
                f"`cell` ({type(cell).__name__}) must return a pair "
                f"(new_carry, y), got {got}: return the new carry and the "
                "step's output, e.g. `return h, h` for a cell whose output "
                "is its state."
            )
        new_carry, y = out
        return keep_where(keep, new_carry, carry), y

    return step


def takes_split_step(cell, unroll, training, key, batch, features):
    """Whether `rnn` runs `cell` by the split-step scan (its hand-written
    backward pass): a split-step cell, not unrolled, without dropout, over
    a batch that is not empty (B = 0 has nothing to make fast, and its
    blocks of no rows would have no size to plan by)."""
    return (
        has_split_step(cell)
        and unroll is not True
        and batch > 0
        and (
            not training
            or draw_dropout(cell, key, (batch,), features, training=training)
            is None
        )
    )


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What every engine is told besides the cell, params, time-major mask,
    inputs and carry: `rnn`'s options, checked."""

    time_axis: int  # of xs: 1 for the split-step scan's batch-major inputs
    key: jax.Array | None
    training: bool
    unroll: bool | int
    remat: bool
    zero_output: bool
    collect: bool  # return_sequences

    @property
    def unroll_steps(self) -> int:
        """`unroll` as lax.scan's int (True unrolls a whole chunk)."""
        return 1 if self.unroll is False else int(self.unroll)


# The engines: each returns (ys in the `time_axis` layout or, without
# `collect`, None; each row's output at its last valid step, zeros if it
# has none; the final carry).
Engine = tuple[jax.Array | None, jax.Array, Any]


def run_split_step(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    run: RunOptions,
) -> Engine:
    """The split-step scan, for `takes_split_step` cells (no dropout, so
    no use for `key` and `training`), over xs in the `time_axis` layout."""
    plan = plan_split_step(
        cell,
        params,
        xs,
        carry,
        chunk=min(CHUNK_STEPS, xs.shape[run.time_axis]),
        time_axis=run.time_axis,
        unroll=run.unroll_steps,
        remat=run.remat,
        zero_output=run.zero_output,
    )
    # jax types a custom_vjp function's result loosely ("object").
    ys, carry, last_y = split_step_scan(  # pyright: ignore[reportGeneralTypeIssues]
        plan, params, xs, step_mask, carry
    )
    return (ys if run.collect else None), last_y, carry


def run_parallel_scan(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    run: RunOptions,
) -> Engine:
    """The parallel scan over time-major xs (`time_axis` 0), which takes
    neither `unroll` nor `remat`."""
    if isinstance(run.unroll, bool) or run.unroll != 1 or run.remat:
        raise ValueError(
            "`parallel=True` takes neither `unroll` nor "
            f"`remat`, got unroll={run.unroll!r}, "
            f"remat={run.remat!r}."
        )
    from jaxrnn._parallel import run_parallel

    return run_parallel(
        cell,
        params,
        xs,
        step_mask,
        carry,
        key=run.key,
        training=run.training,
        zero_output=run.zero_output,
        collect=run.collect,
    )


def run_plain_scan(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    run: RunOptions,
) -> Engine:
    """The plain chunked scan of `cell`'s step functions, over time-major
    xs (`time_axis` 0)."""
    steps, batch = xs.shape[:2]
    features = xs.shape[2] if xs.ndim == 3 else xs.shape[2:]
    project, step = _cell_step_functions(
        cell, params, run.key, run.training, batch, features
    )
    return run_scan(
        cell,
        project,
        step,
        xs,
        step_mask,
        carry,
        chunk=steps if run.unroll is True else min(CHUNK_STEPS, steps),
        unroll=run.unroll_steps,
        remat=run.remat,
        zero_output=run.zero_output,
        collect=run.collect,
    )
