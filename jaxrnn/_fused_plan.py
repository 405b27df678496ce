"""How the split-step scan runs: the plan `jaxrnn.rnn` makes for it.

`split_step_scan` (jaxrnn/_fused.py) takes one static argument, a
`SplitStepPlan`: the cell, the chunk and block sizes, what the forward pass
saves for the backward pass, and the layout. `plan_split_step` picks the
sizes and what to save from the cell's shapes, by the tuning constants
below; each is measured, and its measurements are in
docs/design-notes.md under the anchor named beside it.
`forward_differentiated` says where the scan cannot run at all: under
forward-mode autodiff, which a `jax.custom_vjp` function does not take.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from jax import core

# What the forward pass can save for the backward pass (`SplitStepPlan`).
SAVED = ("carries", "projections", "chunk_carries")

# Backward blocks of about 512 GEMM rows (S*B): XLA:CPU's GEMMs run about
# twice as fast as with 64; at most 1 MB of projections, past which they
# fall out of cache (docs/design-notes.md#blocks).
SPLIT_STEP_BLOCK_ROWS = 512
SPLIT_STEP_BLOCK_BYTES = 1 << 20
# remat reruns each block and holds its buffers meanwhile, so its blocks
# are smaller: about 256 rows and at most 1/32 of the sequence, or one
# chunk where a chunk has 128 rows (docs/design-notes.md#remattrue).
SPLIT_STEP_REMAT_BLOCK_ROWS = 256
SPLIT_STEP_REMAT_MIN_BLOCKS = 32
SPLIT_STEP_REMAT_CHUNK_ROWS = 128
# At D + H >= 768, recomputing the projections costs more than saving them
# (docs/design-notes.md#what-the-forward-pass-saves).
SPLIT_STEP_KEEP_PROJECTIONS_WIDTH = 768
# With saved projections a block has none to recompute or keep in cache:
# about 1024 rows, at most 8 MB (docs/design-notes.md#blocks).
SPLIT_STEP_SAVED_BLOCK_ROWS = 1024
SPLIT_STEP_SAVED_BLOCK_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class SplitStepPlan:
    """The static half of a `split_step_scan` call; hashable where the
    cell is.

    Attributes:
      cell: a cell for which `has_split_step` holds.
      chunk: steps unrolled per iteration of the forward loop, K.
      block: steps per block of the backward pass, S, a multiple of
        `chunk` or all the steps: each block recomputes its projections
        and takes its weight and input gradients with one GEMM each of
        `S*B` rows, efficient where `K*B` rows are not, while its
        sequential loop takes one step per iteration (a block of one
        chunk: its K steps unrolled).
      unroll: `lax.scan`'s unroll factor over chunks (in the backward
        pass's loop over a block's steps: over steps).
      saved: what the forward pass saves for the backward pass, one of
        `SAVED`: "carries", each step's previous carry; "projections",
        also each step's input and recurrent projections (their sum alone
        where the gates add them first: LSTM, SimpleRNN), which the
        backward pass then need not recompute (faster where the
        projections' GEMMs cost more than writing `(T, B, 2*G*H)` floats:
        wide cells); "chunk_carries" (remat), only each block's first
        carry, from which the backward pass reruns the block's steps.
      zero_output: masked steps output zeros instead of repeating the
        row's last valid output.
      time_axis: 0 for time-major xs and ys, 1 for batch-major ones:
        those are read and written a piece at a time in their own layout,
        never transposed as a whole.

    Raises:
      ValueError: `saved` is not one of `SAVED`.
    """

    cell: Any
    chunk: int
    block: int
    unroll: int
    saved: str
    zero_output: bool
    time_axis: int

    def __post_init__(self):
        if self.saved not in SAVED:
            raise ValueError(
                f"saved must be one of {SAVED}; got {self.saved!r}."
            )


def plan_split_step(
    cell: Any,
    params: Any,
    xs: jax.Array,
    carry: Any,
    *,
    chunk: int,
    time_axis: int,
    unroll: int,
    remat: bool,
    zero_output: bool,
) -> SplitStepPlan:
    """The plan for running `cell` over `xs` ((T, B, ...), or (B, T, ...)
    with `time_axis` 1) from `carry` in chunks of `chunk` steps: what the
    forward pass saves (each block's first carry with `remat`; else the
    projections too for wide cells) and the backward pass's blocks."""
    steps, batch = xs.shape[time_axis], xs.shape[1 - time_axis]
    # A chunk of inputs, time-major, for the shapes of its projections.
    chunk_xs = jax.ShapeDtypeStruct((chunk, batch, *xs.shape[2:]), xs.dtype)

    def chunks_per_block(rows: int, max_bytes: int) -> int:
        return _chunks_per_block(cell, params, chunk_xs, rows, max_bytes)

    if remat:
        saved = "chunk_carries"
        if chunk * batch >= SPLIT_STEP_REMAT_CHUNK_ROWS:
            block = chunk
        else:
            block = chunk * chunks_per_block(
                SPLIT_STEP_REMAT_BLOCK_ROWS, SPLIT_STEP_BLOCK_BYTES
            )
            block = min(
                block,
                max(
                    chunk,
                    steps // SPLIT_STEP_REMAT_MIN_BLOCKS // chunk * chunk,
                ),
            )
    elif (
        _contraction_width(cell, xs, carry)
        >= SPLIT_STEP_KEEP_PROJECTIONS_WIDTH
    ):
        saved = "projections"
        block = chunk * chunks_per_block(
            SPLIT_STEP_SAVED_BLOCK_ROWS, SPLIT_STEP_SAVED_BLOCK_BYTES
        )
    else:
        saved = "carries"
        block = chunk * chunks_per_block(
            SPLIT_STEP_BLOCK_ROWS, SPLIT_STEP_BLOCK_BYTES
        )
    return SplitStepPlan(
        cell=cell,
        chunk=chunk,
        block=min(block, steps),
        unroll=unroll,
        saved=saved,
        zero_output=zero_output,
        time_axis=time_axis,
    )


def _trace_types() -> tuple[type | None, type | None]:
    """JAX's (JVPTrace, LinearizeTrace) classes, None where this JAX
    version has no such class."""
    try:
        from jax._src.interpreters import ad
    except ImportError:  # pragma: no cover - a JAX that moved its internals
        return None, None
    return getattr(ad, "JVPTrace", None), getattr(ad, "LinearizeTrace", None)


def forward_differentiated(tree: Any) -> bool:
    """Whether forward-mode autodiff (`jax.jvp`, `jax.jacfwd`) sees a leaf
    of `tree`: a custom_vjp function such as `split_step_scan` would fail
    there ("can't apply forward-mode autodiff (jvp) to a custom_vjp
    function"), so `jaxrnn.rnn` takes its plain scan instead.

    The innermost differentiating trace under each tracer decides: JAX
    handles the custom_vjp call there. Reverse mode (`jax.grad`,
    `jax.vjp`) traces with a LinearizeTrace, even inside
    an outer `jax.jacfwd` (a Hessian), and keeps the hand-written backward
    pass; a JVPTrace means forward mode, unless it stages its tangents for
    linearisation (JAX without ``jax_use_direct_linearize``). Only the
    traces above `rnn`'s own call are visible: a `jax.jvp` applied outside
    a `jax.jit` that encloses `rnn` is not (the jit traces first).
    """
    jvp_trace, linearize_trace = _trace_types()
    if jvp_trace is None:
        return False
    for leaf in jax.tree.leaves(tree):
        trace = (
            getattr(leaf, "_trace", None)
            if isinstance(leaf, core.Tracer)
            else None
        )
        while trace is not None:
            if linearize_trace is not None and isinstance(
                trace, linearize_trace
            ):
                break
            if isinstance(trace, jvp_trace):
                parent = getattr(trace, "parent_trace", None)
                if type(parent).__name__ != "JaxprTrace":
                    return True
                break
            trace = getattr(trace, "parent_trace", None)
    return False


def _contraction_width(cell: Any, xs: jax.Array, carry: Any) -> int:
    """D + H: the length of a row's dot products in the input and the
    recurrent projection, so the FLOPs per element they produce."""
    h_in = jax.eval_shape(
        lambda c: cell.recurrent_input(c, None, xs.dtype), carry
    )
    return xs.shape[-1] + h_in.shape[-1]


def _chunks_per_block(
    cell: Any,
    params: Any,
    chunk_xs: jax.ShapeDtypeStruct,
    rows: int,
    max_bytes: int,
) -> int:
    """How many chunks of steps make a block of the hand-written backward
    pass (at least one): about `rows` GEMM rows, at most `max_bytes` of
    projections."""
    projected = jax.eval_shape(cell.project_inputs, params, chunk_xs)
    chunk_rows = projected.size // projected.shape[-1]
    chunk_bytes = projected.size * projected.dtype.itemsize
    return max(1, min(rows // chunk_rows, max_bytes // chunk_bytes))
