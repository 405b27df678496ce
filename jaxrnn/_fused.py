"""A whole-sequence recurrence with a hand-written backward pass.

For cells whose step splits into an input projection, one recurrent matmul
and elementwise gates (``project_inputs``, ``recurrent_input``,
``project_recurrent``, ``apply_gates``: the built-in LSTM, GRU with
``reset_after`` and SimpleRNN, and any custom cell that offers them),
autodiff of the scan saves every step's gate activations and accumulates
rank-B updates of every weight inside the backward loop. Here the forward
pass saves each step's previous carry (the memory of `remat` at the speed
of no remat) and, for wide cells only, each step's input and recurrent
projections; the backward pass walks blocks of S steps in reverse (`S*B`
about `SPLIT_STEP_BLOCK_ROWS` rows, jaxrnn/_fused_plan.py): it recomputes
the block's input and recurrent projections, where they were not saved,
with one ``(S*B, ...) x (..., G*H)`` GEMM each, keeps only what must be
sequential inside a loop over the block's steps (the gate gradients and
the carry's gradient through one ``(B, G*H) x (G*H, H)`` matmul per step),
then gets the block's kernel, recurrent-kernel, bias and input gradients
from one GEMM each with `S*B` rows. Unless the projections are saved, no
`(T, B, G*H)` array is ever materialised, so nothing large is allocated,
mapped and page-faulted per call; and XLA's CPU GEMMs run about twice as
fast with 512 rows as with 64.

The forward pass is the same chunked scan as `jaxrnn.rnn`'s: one
``(K*B, D) x (D, G*H)`` GEMM per chunk, the K steps unrolled so each reads a
static slice. The loops over chunks, blocks and steps are
jaxrnn/_pieces.py's; the plan (chunk, block, what the forward pass saves)
is jaxrnn/_fused_plan.py's.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._fused_plan import SplitStepPlan
from jaxrnn._masking import (
    masked_chunk_outputs,
    masked_chunk_outputs_backward,
    zero_masked,
)
from jaxrnn._pieces import (
    batch_major_layout,
    scan_pieces,
    swap_layout,
    tree_at,
)
from jaxrnn.protocols import apply_gates, gates_add_projections


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _flat(a: jax.Array) -> jax.Array:
    return a.reshape(-1, *a.shape[2:])


def _steps(
    cell: Any,
    params: Any,
    projected: jax.Array,
    keep: jax.Array | None,
    carry: Any,
    chunk: int,
    unroll: int,
) -> tuple[Any, tuple[jax.Array, Any, jax.Array]]:
    """Runs the steps of a block from its projected inputs `(S, B, G*H)`:
    chunks of `chunk` steps, unrolled so each step reads a static slice.
    Returns (carry, (ys (S, B, ...), every step's previous carry, every
    step's recurrent projection `(S, B, G*H)`))."""

    def run_chunk(carry, chunk_projected, chunk_keep):
        dtype = chunk_projected.dtype
        ys, previous, recurrents = [], [], []
        for k in range(chunk_projected.shape[0]):
            h_in = cell.recurrent_input(carry, None, dtype)
            recurrent = cell.project_recurrent(params, h_in)
            previous.append(carry)
            recurrents.append(recurrent)
            carry, y = apply_gates(
                cell,
                carry,
                chunk_projected[k],
                recurrent,
                None if chunk_keep is None else chunk_keep[k],
            )
            ys.append(y)
        return carry, (jnp.stack(ys), _stack(previous), jnp.stack(recurrents))

    # Gate fusions that read a dynamic slice of the block's projection
    # (scan's xs) compile to slow loops, hence `hand_on`.
    return scan_pieces(
        lambda c, piece, _: run_chunk(c, *piece),
        carry,
        (projected, keep),
        chunk,
        unroll=unroll,
        hand_on=True,
    )


def _forward(
    plan: SplitStepPlan,
    params: Any,
    xs: jax.Array,
    keep: jax.Array | None,
    carry: Any,
    *,
    residuals: bool,
) -> tuple[jax.Array, Any, jax.Array, Any]:
    """Runs the steps, one input-projection GEMM per chunk of K steps
    (larger blocks made the forward slower: their projection falls out of
    cache); returns (ys (T, B, ...) or with `time_axis` 1 (B, T, ...),
    carry, last y, and with `residuals` what `plan.saved` names, else
    None: every step's previous carry, with "projections" also every
    step's input and recurrent projections `(T, B, G*H)` (where
    `gates_add_projections`, their sum and None), with "chunk_carries"
    every chunk's first carry instead). Masked steps' outputs follow
    `masked_chunk_outputs`."""
    cell, saved, time_axis = plan.cell, plan.saved, plan.time_axis

    def run_chunk(state, inputs, _):
        carry, last = state
        chunk_xs, chunk_keep = inputs
        first = carry
        chunk_xs = zero_masked(swap_layout(chunk_xs, time_axis), chunk_keep)
        projected = cell.project_inputs(params, chunk_xs)  # (K, B, G*H)
        carry, (ys, previous, recurrent) = _steps(
            cell, params, projected, chunk_keep, carry, plan.chunk, plan.unroll
        )
        ys, last = masked_chunk_outputs(ys, chunk_keep, last, plan.zero_output)
        ys = swap_layout(ys, time_axis)
        if not residuals:
            return (carry, last), (ys,)
        if saved == "chunk_carries":
            previous = jax.tree.map(lambda leaf: leaf[None], first)
        elif saved == "projections":
            # Gates that add the projections first need only their sum: one
            # (T, B, G*H) sequence saved instead of two.
            previous = (
                (previous, projected + recurrent, None)
                if summed
                else (previous, projected, recurrent)
            )
        return (carry, last), (ys, previous)

    one_step = jax.ShapeDtypeStruct(
        (1, xs.shape[1 - time_axis], *xs.shape[2:]), xs.dtype
    )

    def first_step(c, x):
        projected = cell.project_inputs(params, x)
        _, (ys, _, recurrent) = _steps(cell, params, projected, None, c, 1, 1)
        return ys[0], projected[0], recurrent[0]

    first_y, first_projected, first_recurrent = jax.eval_shape(
        first_step, carry, one_step
    )
    summed = (
        residuals
        and saved == "projections"
        and gates_add_projections(
            cell,
            carry,
            first_projected,
            first_recurrent,
            None if keep is None else keep[0],
        )
    )
    last = jnp.zeros(first_y.shape, first_y.dtype)
    (carry, last), out = scan_pieces(
        run_chunk,
        (carry, last),
        (xs, keep),
        plan.chunk,
        unroll=plan.unroll,
        **batch_major_layout(time_axis, (0,), (0,)),
    )
    return out[0], carry, last, (out[1] if residuals else None)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def split_step_scan(
    plan: SplitStepPlan,
    params: Any,
    xs: jax.Array,
    keep: jax.Array | None,
    carry: Any,
) -> tuple[jax.Array, Any, jax.Array]:
    """Runs a split-step cell over a sequence.

    Args:
      plan: the cell and how to run it (static; see `SplitStepPlan`).
      params: the cell's params.
      xs: (T, B, D) inputs, (B, T, D) with ``plan.time_axis`` 1.
      keep: bool (T, B) or None; a step whose entry is False keeps the
        carry, reads its input as zeros and passes it a zero gradient.
      carry: the initial carry, leaves (B, ...).

    Returns:
      ``(ys, final_carry, last)``: ys (T, B, ...) (with ``time_axis`` 1:
      (B, T, ...)) holds every step's output, a masked step's by Keras'
      rules (the row's last valid output, zeros before its first, or
      zeros with ``zero_output``); last (B, ...) is each row's output at
      its last valid step, zeros if it has none.
    """
    ys, final, last, _ = _forward(
        plan, params, xs, keep, carry, residuals=False
    )
    return ys, final, last


def _split_step_fwd(
    plan: SplitStepPlan,
    params: Any,
    xs: jax.Array,
    keep: jax.Array | None,
    carry: Any,
) -> tuple[tuple[jax.Array, Any, jax.Array], tuple[Any, ...]]:
    ys, final, last, previous = _forward(
        plan, params, xs, keep, carry, residuals=True
    )
    if plan.saved == "chunk_carries":
        # Blocks start every block // chunk chunks (a lone block may hold a
        # partial chunk); only their first carries are kept.
        previous = tree_at(
            previous,
            slice(None, None, plan.block // plan.chunk)
            if plan.block % plan.chunk == 0
            else slice(0, 1),
        )
    return (ys, final, last), (params, xs, keep, previous)


def _gates_backward(cell, prev, projected, recurrent, keep, d_new, d_y):
    _, gates_vjp = jax.vjp(
        lambda c, p, r: apply_gates(cell, c, p, r, keep),
        prev,
        projected,
        recurrent,
    )
    return gates_vjp((d_new, d_y))


def _back_chunk(plan: SplitStepPlan, params: Any):
    """The backward loop's body over a chunk of steps (or one step), last
    to first: ``(d_carry, d_last)`` in and out, and the chunk's gradients
    of the input and the recurrent projection, the latter None where the
    gates add the two (both then get the same gradient)."""
    cell = plan.cell

    def back_chunk(state, inputs, _):
        d_carry, d_last = state
        (
            chunk_projected,
            chunk_recurrent,
            chunk_previous,
            chunk_keep,
            chunk_d_ys,
        ) = inputs
        dtype = chunk_projected.dtype
        d_projected, d_recurrent = [], []
        for k in reversed(range(chunk_projected.shape[0])):
            step_keep = None if chunk_keep is None else chunk_keep[k]
            d_y, d_last = masked_chunk_outputs_backward(
                step_keep, chunk_d_ys[k], d_last, plan.zero_output
            )
            prev = tree_at(chunk_previous, k)
            # Without a recurrent sequence the saved one is the projections'
            # sum (`_forward`), which the gates take plus zeros.
            step_recurrent = (
                jnp.zeros_like(chunk_projected[k])
                if chunk_recurrent is None
                else chunk_recurrent[k]
            )
            d_prev, d_proj, d_rec = _gates_backward(
                cell,
                prev,
                chunk_projected[k],
                step_recurrent,
                step_keep,
                d_carry,
                d_y,
            )
            _, step_vjp = jax.vjp(
                lambda c: cell.project_recurrent(
                    params, cell.recurrent_input(c, None, dtype)
                ),
                prev,
            )
            (d_prev_h,) = step_vjp(d_rec)
            d_carry = jax.tree.map(jnp.add, d_prev, d_prev_h)
            d_projected.append(d_proj)
            d_recurrent.append(d_rec)
        # Where the gates add the two projections first (LSTM, SimpleRNN),
        # autodiff hands both the same gradient: the loop writes it once,
        # not two equal (S, B, G*H) sequences.
        shared = all(p is r for p, r in zip(d_projected, d_recurrent))
        return (d_carry, d_last), (
            jnp.stack(d_projected[::-1]),
            None if shared else jnp.stack(d_recurrent[::-1]),
        )

    return back_chunk


def _back_block(plan: SplitStepPlan, params: Any):
    """The backward pass's body over a block of S steps: recomputes what
    the forward pass did not save, runs the block's steps backwards, then
    takes the block's weight and input gradients with one GEMM each."""
    cell, time_axis = plan.cell, plan.time_axis
    back_chunk = _back_chunk(plan, params)

    def back_block(state, inputs, first):
        # d_state: the gradients of the carry and of the last valid output.
        d_state, d_params = state
        block_xs, block_previous, block_keep, block_d_ys = inputs
        block_xs = zero_masked(swap_layout(block_xs, time_axis), block_keep)
        block_d_ys = swap_layout(block_d_ys, time_axis)
        steps, batch = block_xs.shape[:2]
        projected, inputs_vjp = jax.vjp(
            lambda p, x: cell.project_inputs(p, x), params, _flat(block_xs)
        )
        dtype = projected.dtype
        projected = projected.reshape(steps, batch, -1)
        if plan.saved == "chunk_carries":
            _, (_, block_previous, _) = _steps(
                cell,
                params,
                projected,
                block_keep,
                first,
                plan.chunk,
                plan.unroll,
            )
        kept_recurrent = None
        if plan.saved == "projections":
            block_previous, projected, kept_recurrent = block_previous
        h_in = _flat(cell.recurrent_input(block_previous, None, dtype))
        recurrent, weights_vjp = jax.vjp(
            lambda p: cell.project_recurrent(p, h_in), params
        )
        # Where the forward pass saved the projections, the GEMMs that
        # recompute them above have no use and XLA drops them; their VJPs
        # stay.
        recurrent = (
            kept_recurrent
            if plan.saved == "projections"
            else recurrent.reshape(steps, batch, -1)
        )
        # A block of one chunk runs unrolled; longer blocks step one at a
        # time: as fast (faster at B=16, T=2048) and it compiles in about
        # 40 % less time than unrolled chunks
        # (docs/design-notes.md#the-step-loop).
        step_size = plan.chunk if plan.block <= plan.chunk else 1
        d_state, (d_projected, d_recurrent) = scan_pieces(
            back_chunk,
            d_state,
            (projected, recurrent, block_previous, block_keep, block_d_ys),
            step_size,
            unroll=plan.unroll,
            reverse=True,
        )
        if d_recurrent is None:
            d_recurrent = d_projected
        d_params_in, d_xs = inputs_vjp(_flat(d_projected))
        (d_params_rec,) = weights_vjp(_flat(d_recurrent))
        d_params = jax.tree.map(
            lambda a, b, c: a + b + c, d_params, d_params_in, d_params_rec
        )
        return (d_state, d_params), (
            swap_layout(d_xs.reshape(block_xs.shape), time_axis),
        )

    return back_block


def _split_step_bwd(
    plan: SplitStepPlan, residuals: tuple[Any, ...], cotangents: Any
) -> tuple[Any, jax.Array, jax.Array | None, Any]:
    params, xs, keep, previous = residuals
    d_ys, d_carry, d_last = cotangents
    if keep is None:
        # Unmasked, the last valid output is the last step's: its gradient
        # joins that step's here, and the loops carry none (a zero carried
        # through every step cost a broadcast and two copies per step).
        last_step = (slice(None),) * plan.time_axis + (-1,)
        d_ys = d_ys.at[last_step].add(d_last)
        d_last = None
    state = ((d_carry, d_last), jax.tree.map(jnp.zeros_like, params))
    if plan.saved == "chunk_carries":
        seq = (xs, None, keep, d_ys)
        per_block = previous
    else:
        seq = (xs, previous, keep, d_ys)
        per_block = None
    ((d_carry, _), d_params), (d_xs,) = scan_pieces(
        _back_block(plan, params),
        state,
        seq,
        plan.block,
        reverse=True,
        per_piece=per_block,
        **batch_major_layout(plan.time_axis, (0, 3), (0,)),
    )
    d_keep = None if keep is None else jnp.zeros(keep.shape, jax.dtypes.float0)
    return d_params, d_xs, d_keep, d_carry


split_step_scan.defvjp(_split_step_fwd, _split_step_bwd)
