"""`rnn`: runs a cell over time with masks, reversal and an explicit carry.

`rnn` checks its arguments and brings them to its engines' layout
(jaxrnn/_rnn_inputs.py), picks an engine by the cell's protocol tier
(jaxrnn/protocols.py) and the options, and restores the caller's layout.
The engines: the split-step scan with its hand-written backward pass
(jaxrnn/_fused.py, planned by jaxrnn/_fused_plan.py), the parallel scan
(jaxrnn/_parallel.py) and the plain chunked scan (jaxrnn/_scan.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._fused import split_step_scan
from jaxrnn._fused_plan import forward_differentiated, plan_split_step
from jaxrnn._masking import keep_where, zero_masked
from jaxrnn._rnn_inputs import (
    batched_carry,
    check_options,
    checked_inputs,
    restore_layout,
    time_major_mask,
)
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


def rnn(
    cell: Any,
    params: Any,
    inputs: jax.Array,
    *,
    initial_carry: Any = None,
    mask: jax.Array | None = None,
    seq_lengths: jax.Array | None = None,
    time_major: bool = False,
    go_backwards: bool = False,
    keep_order: bool = False,
    unroll: bool | int = 1,
    remat: bool = False,
    parallel: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    key: jax.Array | None = None,
    training: bool = False,
) -> tuple[jax.Array, Any]:
    """Runs `cell` over the time axis of `inputs`.

    Args:
      cell: a built-in cell, `StackedCells`, or any object with ``init``,
        ``initial_carry(batch_shape)`` and ``cell(params, carry, x, *, key,
        training) -> (carry, y)``. Cells that also offer ``dropout_masks``,
        ``project_inputs`` and ``step_projected`` get the input projection
        hoisted out of the recurrence; those that further split a step into
        ``recurrent_input``, ``project_recurrent`` and elementwise
        ``apply_gates`` (the built-in LSTM, GRU with ``reset_after`` and
        SimpleRNN) also get a hand-written backward pass that saves the
        carries, and for wide cells the projections (see the design
        notes, "The backward pass"); a cell whose ``gates_take_keep`` is
        true takes ``apply_gates(..., keep=)`` and holds masked steps itself
        (LSTM, GRU), other cells' carries are selected. A cell whose steps
        take more than a vector (a convolutional cell's (H, W, C) frames)
        says how many feature axes with an ``input_ndim`` attribute
        (default 1).
      params: the cell's params.
      inputs: (B, T, D); (T, B, D) with ``time_major``; or unbatched (T, D).
        For a cell with ``input_ndim`` n, D stands for n feature axes.
      initial_carry: the carry to start from (leaves (B, ...), or unbatched
        (...)); zeros when None. Thread ``final_carry`` back in here to run a
        long stream in chunks.
      mask: bool, (B, T) (time-major: (T, B); unbatched: (T,)). A masked step
        keeps the carry and repeats the previous output (zero with
        ``zero_output_for_mask``). Masked inputs never reach outputs, carries
        or gradients, whatever they hold (NaN included).
      seq_lengths: integer (B,) (unbatched: scalar), the right-padded mask's
        lengths, each in [0, T]; give either this or `mask`. Concrete
        lengths outside [0, T] are refused. Under `jax.jit` (or any
        transformation that traces them) their values are unknown when
        `rnn` checks its arguments, so they are not checked: a length
        below 0 then runs as 0 (no valid step) and one above T as T.
      time_major: inputs and outputs are (T, B, ...).
      go_backwards: process time in reverse; outputs come in processing
        order, as Keras returns them.
      keep_order: with `go_backwards`, return outputs aligned with inputs;
        refused without `go_backwards`, where it would mean nothing.
      unroll: True for a Python loop over the steps (larger programs, much
        longer compiles, same numbers, plain autodiff); an int is
        `lax.scan`'s unroll factor over step chunks.
      remat: keep only one carry per chunk of steps for the backward pass,
        which reruns the chunk (`jax.checkpoint` for cells without the
        split step): less memory, same gradients. Refused with
        ``unroll=True``, whose one chunk is the whole sequence.
      parallel: run a linear recurrence over the whole sequence at once with
        `jax.lax.associative_scan` (cells with ``parallel_coefficients``:
        `MinGRUCell`, `MinLSTMCell`, `LRUCell`, and `StackedCells` of them;
        the protocol is in jaxrnn/_parallel.py); the sequential run's
        numbers up to float rounding, gradients too, in O(log T) depth. It
        pays off on accelerators, and on a CPU only for narrow steps
        (benchmarks/PARALLEL.md). `unroll` and `remat` do not apply.
      return_sequences: return all outputs, else the last one (with a mask:
        each row's output at its last valid step, zeros if it has none).
      zero_output_for_mask: masked steps output zeros in the sequence.
      key: PRNG key for dropout, used only when `training`.
      training: turn dropout on.

    Returns:
      ``(outputs, final_carry)``: outputs (B, T, H), (T, B, H) or (T, H)
      with `return_sequences`, else (B, H) or (H,); final_carry has the
      initial carry's structure.

    Forward-mode differentiation (`jax.jvp`, `jax.jacfwd`) works: where
    `rnn` sees it (its arguments carry forward-mode tangents) it runs the
    plain scan, whose JVP JAX derives, instead of the split-step scan,
    whose hand-written backward pass (a `jax.custom_vjp`) JAX cannot run
    forwards. Reverse mode (`jax.grad`, `jax.vjp`) keeps the hand-written
    pass. `jax.linearize` traces like reverse mode, and its linear function
    then fails forwards as for any custom_vjp function: pass
    ``unroll=True`` there, or use `jax.jvp`. An empty batch (B = 0) runs
    and returns empty outputs.

    Raises:
      ValueError, TypeError: for inputs, masks, carries or params of the
        wrong rank, shape or dtype, for unknown options or ones that mean
        nothing together (`keep_order` without `go_backwards`, `remat`
        with ``unroll=True``), and for a cell whose step does not return
        ``(new_carry, y)`` shaped like its carry.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import LSTMCell
      >>> cell = LSTMCell(8)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> ys, (h, c) = rnn(cell, params, jnp.ones((2, 5, 3)),
      ...                  seq_lengths=jnp.array([5, 2]))
      >>> ys.shape, h.shape
      ((2, 5, 8), (2, 8))
    """
    with jax.named_scope("jaxrnn.rnn"):
        check_options(
            time_major=time_major,
            go_backwards=go_backwards,
            keep_order=keep_order,
            remat=remat,
            return_sequences=return_sequences,
            zero_output_for_mask=zero_output_for_mask,
            training=training,
            parallel=parallel,
            unroll=unroll,
        )
        input_ndim = getattr(cell, "input_ndim", 1)
        xs, batched = checked_inputs(inputs, time_major, input_ndim)
        # The split-step scan reads batch-major inputs and writes
        # batch-major outputs a chunk at a time; everything else runs on a
        # time-major copy.
        time_axis = 1 if batched and not time_major else 0
        steps, batch = xs.shape[time_axis], xs.shape[1 - time_axis]
        features = xs.shape[2] if input_ndim == 1 else xs.shape[2:]
        if hasattr(cell, "check_params"):
            cell.check_params(params, features)
        step_mask = time_major_mask(
            mask, seq_lengths, batched, time_major, steps, batch
        )
        carry = batched_carry(cell, initial_carry, batched, batch)
        split_step = (
            not parallel
            and _takes_split_step(cell, unroll, training, key, batch, features)
            and not forward_differentiated((params, xs, carry))
        )
        if not split_step and time_axis == 1:
            xs, time_axis = jnp.swapaxes(xs, 0, 1), 0
        if go_backwards:
            xs = jnp.flip(xs, time_axis)
            step_mask = None if step_mask is None else jnp.flip(step_mask, 0)
        if not split_step:
            # Zero masked inputs so NaN/inf there cannot reach the backward
            # pass. (The split-step scan zeroes them a chunk at a time.)
            xs = zero_masked(xs, step_mask)
        engine = (
            _run_split_step
            if split_step
            else _run_parallel
            if parallel
            else _run_plain
        )
        ys, last_y, carry = engine(
            cell,
            params,
            xs,
            step_mask,
            carry,
            time_axis=time_axis,
            key=key,
            training=training,
            unroll=unroll,
            remat=remat,
            zero_output=zero_output_for_mask,
            collect=return_sequences,
        )
        if ys is not None:  # with return_sequences
            if go_backwards and keep_order:
                ys = jnp.flip(ys, time_axis)
            outputs = (
                ys
                if time_axis == 1
                else restore_layout(ys, batched, time_major)
            )
        else:
            outputs = last_y if batched else last_y[0]
        if not batched:
            carry = jax.tree.map(lambda leaf: leaf[0], carry)
        return outputs, carry


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


def _takes_split_step(cell, unroll, training, key, batch, features):
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


# The engines: each returns (ys in the `time_axis` layout or, without
# `collect`, None; each row's output at its last valid step, zeros if it
# has none; the final carry).
Engine = tuple[jax.Array | None, jax.Array, Any]


def _run_split_step(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    *,
    time_axis: int,
    key: jax.Array | None,
    training: bool,
    unroll: bool | int,
    remat: bool,
    zero_output: bool,
    collect: bool,
) -> Engine:
    """The split-step scan, for `_takes_split_step` cells (no dropout, so
    no use for `key` and `training`), over xs in the `time_axis` layout."""
    del key, training
    plan = plan_split_step(
        cell,
        params,
        xs,
        carry,
        chunk=min(CHUNK_STEPS, xs.shape[time_axis]),
        time_axis=time_axis,
        unroll=1 if unroll is False else int(unroll),
        remat=remat,
        zero_output=zero_output,
    )
    # jax types a custom_vjp function's result loosely ("object").
    ys, carry, last_y = split_step_scan(  # pyright: ignore[reportGeneralTypeIssues]
        plan, params, xs, step_mask, carry
    )
    return (ys if collect else None), last_y, carry


def _run_parallel(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    *,
    time_axis: int,
    key: jax.Array | None,
    training: bool,
    unroll: bool | int,
    remat: bool,
    zero_output: bool,
    collect: bool,
) -> Engine:
    """The parallel scan over time-major xs (`time_axis` 0), which takes
    neither `unroll` nor `remat`."""
    del time_axis
    if isinstance(unroll, bool) or unroll != 1 or remat:
        raise ValueError(
            "`parallel=True` takes neither `unroll` nor "
            f"`remat`, got unroll={unroll!r}, "
            f"remat={remat!r}."
        )
    from jaxrnn._parallel import run_parallel

    return run_parallel(
        cell,
        params,
        xs,
        step_mask,
        carry,
        key=key,
        training=training,
        zero_output=zero_output,
        collect=collect,
    )


def _run_plain(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    *,
    time_axis: int,
    key: jax.Array | None,
    training: bool,
    unroll: bool | int,
    remat: bool,
    zero_output: bool,
    collect: bool,
) -> Engine:
    """The plain chunked scan of `cell`'s step functions, over time-major
    xs (`time_axis` 0)."""
    del time_axis
    steps, batch = xs.shape[:2]
    features = xs.shape[2] if xs.ndim == 3 else xs.shape[2:]
    project, step = _cell_step_functions(
        cell, params, key, training, batch, features
    )
    return run_scan(
        cell,
        project,
        step,
        xs,
        step_mask,
        carry,
        chunk=steps if unroll is True else min(CHUNK_STEPS, steps),
        unroll=1 if unroll is False else int(unroll),
        remat=remat,
        zero_output=zero_output,
        collect=collect,
    )
