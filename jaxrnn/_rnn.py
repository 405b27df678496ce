"""`rnn`: runs a cell over time with masks, reversal and an explicit carry."""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxrnn._fused import apply_gates, forward_differentiated, split_step_scan
from jaxrnn._masking import (
    broadcast_over,
    keep_where,
    lengths_to_mask,
    masked_chunk_outputs,
)
from jaxrnn._validation import check_bool, check_floating, check_tree_like
from jaxrnn.protocols import draw_dropout, has_projected_step, has_split_step

# Steps per chunk of the hoisted input projection: one (K*B, D) x (D, G*H)
# GEMM per chunk, the K steps unrolled so each reads a static slice. A
# whole-sequence projection of tens of MB exceeds the allocator's mmap
# threshold and page-faults on every call (2x slower forward at B=32, T=128,
# H=256); K=8 is a little faster forward but autodiff through 8 unrolled
# steps makes training 1.3-1.7x slower than K=4 (benchmarks/chunk_size.py).
CHUNK_STEPS = 4

# Blocks of the hand-written backward pass: S steps of B rows recompute
# their projections and take their weight and input gradients with one GEMM
# each. XLA's CPU GEMMs run about twice as fast with 512 rows as with 64,
# but a block's projections past about 1 MB fall out of cache and the step
# loop slows (benchmarks/chunk_size.py --blocks: B=16, T=2048, H=128 LSTM
# training 12 % faster at 512 rows; B=32, H=256 best at 256 rows).
SPLIT_STEP_BLOCK_ROWS = 512
SPLIT_STEP_BLOCK_BYTES = 1 << 20
# With remat the backward pass reruns each block from its first carry and
# keeps the block's carries, projections and their gradients meanwhile, so
# its blocks are smaller: about 256 rows and at most 1/32 of the sequence
# (a block's buffers then stay below the saved first carries), or one chunk
# where a chunk has 128 rows or more (B=32: least memory and fastest).
# Against one chunk per block that is 1.2-2x faster at B <= 16 for as
# little memory or less (B=1, T=512, H=64 LSTM 8.4 -> 4.4 ms; B=16,
# T=2048, H=128 LSTM 496 -> 433 ms).
SPLIT_STEP_REMAT_BLOCK_ROWS = 256
SPLIT_STEP_REMAT_MIN_BLOCKS = 32
SPLIT_STEP_REMAT_CHUNK_ROWS = 128
# Without remat, the forward pass also saves every step's input and
# recurrent projections (T, B, 2*G*H floats) where recomputing them costs
# more than writing and reading them back: at D + H >= 768 (training
# 5-11 % faster at B=16-128 with H=384-512; 8-31 % slower at D + H <= 512,
# docs/design-notes.md#what-the-forward-pass-saves). That memory is still
# less than autodiff's.
SPLIT_STEP_KEEP_PROJECTIONS_WIDTH = 768
# Where the forward pass saved the projections, a block has none to
# recompute and keep in cache, and larger blocks pay only in memory for
# their gradients: about 1024 rows, at most 8 MB of projections (B=128,
# H=512 training 0.87-0.94x the time with 512 rows and one 4 MB chunk per
# block, GRU 0.96; B=32, H=512 0.97; temp memory +10-24 %).
SPLIT_STEP_SAVED_BLOCK_ROWS = 1024
SPLIT_STEP_SAVED_BLOCK_BYTES = 8 << 20


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
        _check_options(
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
        xs, batched = _checked_inputs(inputs, time_major, input_ndim)
        # The split-step scan reads batch-major inputs and writes
        # batch-major outputs a chunk at a time; everything else runs on a
        # time-major copy.
        time_axis = 1 if batched and not time_major else 0
        steps, batch = xs.shape[time_axis], xs.shape[1 - time_axis]
        features = xs.shape[2] if input_ndim == 1 else xs.shape[2:]
        if hasattr(cell, "check_params"):
            cell.check_params(params, features)
        step_mask = _time_major_mask(
            mask, seq_lengths, batched, time_major, steps, batch
        )
        carry = _batched_carry(cell, initial_carry, batched, batch)
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
        if step_mask is not None and not split_step:
            # Zero masked inputs so NaN/inf there cannot reach the backward
            # pass: jnp.where's gradient multiplies the unused branch by 0.
            # (The split-step scan zeroes them a chunk at a time.)
            xs = jnp.where(
                broadcast_over(step_mask, xs), xs, jnp.zeros((), xs.dtype)
            )
        if split_step:
            ys, last_y, carry = _run_split_step(
                cell,
                params,
                xs,
                step_mask,
                carry,
                time_axis=time_axis,
                unroll=unroll,
                remat=remat,
                zero_output=zero_output_for_mask,
                collect=return_sequences,
            )
        elif parallel:
            if isinstance(unroll, bool) or unroll != 1 or remat:
                raise ValueError(
                    "`parallel=True` takes neither `unroll` nor "
                    f"`remat`, got unroll={unroll!r}, "
                    f"remat={remat!r}."
                )
            from jaxrnn._parallel import run_parallel

            ys, last_y, carry = run_parallel(
                cell,
                params,
                xs,
                step_mask,
                carry,
                key=key,
                training=training,
                zero_output=zero_output_for_mask,
                collect=return_sequences,
            )
        else:
            ys, last_y, carry = _run(
                cell,
                params,
                xs,
                step_mask,
                carry,
                key=key,
                training=training,
                unroll=unroll,
                remat=remat,
                zero_output=zero_output_for_mask,
                collect=return_sequences,
            )
        if return_sequences:
            if go_backwards and keep_order:
                ys = jnp.flip(ys, time_axis)
            outputs = (
                ys
                if time_axis == 1
                else _restore_layout(ys, batched, time_major)
            )
        else:
            outputs = last_y if batched else last_y[0]
        if not batched:
            carry = jax.tree.map(lambda leaf: leaf[0], carry)
        return outputs, carry


def _check_options(*, unroll, **flags) -> None:
    for name, value in flags.items():
        check_bool(name, value)
    if not isinstance(unroll, bool) and (
        not isinstance(unroll, numbers.Integral) or unroll < 1
    ):
        raise ValueError(
            f"`unroll` must be a bool or a positive int, got {unroll!r}."
        )
    # Options that would be accepted only to be ignored.
    if flags["keep_order"] and not flags["go_backwards"]:
        raise ValueError(
            "`keep_order=True` reorders the outputs of `go_backwards=True` "
            "and means nothing without it, got go_backwards=False; drop "
            "keep_order (forward outputs are already aligned with inputs)."
        )
    if flags["remat"] and unroll is True:
        raise ValueError(
            "`remat=True` keeps one carry per chunk of steps, and "
            "`unroll=True` makes the whole sequence one chunk, so together "
            "they save nothing; got unroll=True, remat=True. Drop one (an "
            "int unroll factor works with remat)."
        )


def _checked_inputs(inputs, time_major, input_ndim=1):
    """Returns (inputs, whether the call was batched): batched inputs as
    they came, unbatched ones as `(T, 1, *features)`."""
    inputs = jnp.asarray(inputs)
    check_floating("inputs", inputs)
    if inputs.ndim == input_ndim + 1:
        xs, batched = inputs[:, None], False
    elif inputs.ndim == input_ndim + 2:
        xs, batched = inputs, True
    else:
        features = (
            "D"
            if input_ndim == 1
            else ", ".join(f"F{i}" for i in range(1, input_ndim + 1))
        )
        layout = f"(T, B, {features})" if time_major else f"(B, T, {features})"
        raise ValueError(
            f"`inputs` must have shape {layout} or unbatched "
            f"(T, {features}), got {inputs.shape} (rank "
            f"{inputs.ndim})."
        )
    if xs.shape[0 if time_major or not batched else 1] == 0:
        raise ValueError(
            f"`inputs` must have at least one time step, got "
            f"shape {inputs.shape}."
        )
    return xs, batched


def _time_major_mask(mask, seq_lengths, batched, time_major, steps, batch):
    """Returns the (T, B) bool mask that `mask` or `seq_lengths` stands for."""
    if mask is not None and seq_lengths is not None:
        raise ValueError("Give `mask` or `seq_lengths`, not both.")
    if seq_lengths is not None:
        seq_lengths = jnp.asarray(seq_lengths)
        want = (batch,) if batched else ()
        if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
            raise TypeError(
                "`seq_lengths` must have an integer dtype, got "
                f"{seq_lengths.dtype}."
            )
        if seq_lengths.shape != want:
            raise ValueError(
                f"`seq_lengths` must have shape {want}, got "
                f"{seq_lengths.shape}."
            )
        # lengths_to_mask refuses lengths outside [0, T] where it can see
        # them (not under jit).
        return lengths_to_mask(seq_lengths.reshape(batch), steps).T
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"`mask` must be a bool array, got {mask.dtype} "
            "(use mask.astype(bool))."
        )
    if not batched:
        want = (steps,)
    else:
        want = (steps, batch) if time_major else (batch, steps)
    if mask.shape != want:
        raise ValueError(f"`mask` must have shape {want}, got {mask.shape}.")
    if not batched:
        return mask[:, None]
    return mask if time_major else mask.T


def _batched_carry(cell, initial_carry, batched, batch):
    if initial_carry is None:
        return cell.initial_carry((batch,))
    expected = jax.eval_shape(
        lambda: cell.initial_carry((batch,) if batched else ())
    )
    check_tree_like("initial_carry", initial_carry, expected)
    for leaf in jax.tree.leaves(initial_carry):
        check_floating("initial_carry", leaf)
    carry = jax.tree.map(jnp.asarray, initial_carry)
    if not batched:
        carry = jax.tree.map(lambda leaf: leaf[None], carry)
    return carry


def _restore_layout(ys, batched, time_major):
    if not batched:
        return ys[:, 0]
    return ys if time_major else jnp.swapaxes(ys, 0, 1)


def _cell_step_functions(cell, params, key, training, batch, features):
    """Returns (project, step): the hoisted input half and the recurrent
    half, ``step(carry, x, keep) -> (carry, y)``; where `keep` (bool (B,)
    or None) is False the carry comes back unchanged."""
    if has_projected_step(cell):
        dropout = draw_dropout(
            cell, key, (batch,), features, training=training
        )

        def project(xs):
            return cell.project_inputs(params, xs, dropout)

        if has_split_step(cell):

            def step(carry, projected, keep):
                h_in = cell.recurrent_input(carry, dropout, projected.dtype)
                return apply_gates(
                    cell,
                    carry,
                    projected,
                    cell.project_recurrent(params, h_in),
                    keep,
                )

            return project, step

        def cell_step(carry, projected):
            return cell.step_projected(params, carry, projected, dropout)
    else:

        def project(xs):
            return xs

        def cell_step(carry, x):
            # The same key at every step: a cell that draws its dropout masks
            # from it reuses one mask per sequence, as Keras does.
            return cell(params, carry, x, key=key, training=training)

    def step(carry, x, keep):
        out = cell_step(carry, x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            shape = (
                f"an array of shape {tuple(out.shape)}"
                if hasattr(out, "shape")
                else type(out).__name__
            )
            raise ValueError(
                f"`cell` ({type(cell).__name__}) must return a pair "
                f"(new_carry, y), got {shape}: return the new carry and the "
                "step's output, e.g. `return h, h` for a cell whose output "
                "is its state."
            )
        new_carry, y = out
        return keep_where(keep, new_carry, carry), y

    return project, step


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


def _run_split_step(
    cell,
    params,
    xs,
    step_mask,
    carry,
    *,
    time_axis,
    unroll,
    remat,
    zero_output,
    collect,
):
    """`_run` for `_takes_split_step` cells, over xs in the `time_axis`
    layout; returns (ys in that layout or None, last y, carry)."""
    steps, batch = xs.shape[time_axis], xs.shape[1 - time_axis]
    chunk = min(CHUNK_STEPS, steps)
    # A chunk of inputs, time-major, for the shapes of its projections.
    chunk_xs = jax.ShapeDtypeStruct((chunk, batch, *xs.shape[2:]), xs.dtype)
    if remat:
        saved = "chunk_carries"
    elif (
        _contraction_width(cell, xs, carry)
        >= SPLIT_STEP_KEEP_PROJECTIONS_WIDTH
    ):
        saved = "projections"
    else:
        saved = "carries"
    if saved == "carries":
        block = chunk * _chunks_per_block(
            cell,
            params,
            chunk_xs,
            SPLIT_STEP_BLOCK_ROWS,
            SPLIT_STEP_BLOCK_BYTES,
        )
    elif saved == "projections":
        block = chunk * _chunks_per_block(
            cell,
            params,
            chunk_xs,
            SPLIT_STEP_SAVED_BLOCK_ROWS,
            SPLIT_STEP_SAVED_BLOCK_BYTES,
        )
    elif chunk * batch >= SPLIT_STEP_REMAT_CHUNK_ROWS:
        block = chunk
    else:
        block = chunk * _chunks_per_block(
            cell,
            params,
            chunk_xs,
            SPLIT_STEP_REMAT_BLOCK_ROWS,
            SPLIT_STEP_BLOCK_BYTES,
        )
        block = min(
            block,
            max(chunk, steps // SPLIT_STEP_REMAT_MIN_BLOCKS // chunk * chunk),
        )
    block = min(block, steps)
    ys, carry, last_y = split_step_scan(
        cell,
        chunk,
        block,
        1 if unroll is False else int(unroll),
        saved,
        zero_output,
        time_axis,
        params,
        xs,
        step_mask,
        carry,
    )
    return (ys if collect else None), last_y, carry


def _run(
    cell,
    params,
    xs,
    step_mask,
    carry,
    *,
    key,
    training,
    unroll,
    remat,
    zero_output,
    collect,
):
    """Scans chunks of steps; returns (ys (T, B, ...) or None, last y, carry)."""
    steps, batch = xs.shape[:2]
    features = xs.shape[2] if xs.ndim == 3 else xs.shape[2:]
    project, step = _cell_step_functions(
        cell, params, key, training, batch, features
    )

    def run_chunk(state, chunk_xs, chunk_mask):
        carry, y_prev = state
        projected = project(chunk_xs)  # (K, B, G*H)
        ys = []
        for k in range(chunk_xs.shape[0]):
            keep = None if chunk_mask is None else chunk_mask[k]
            carry, y = step(carry, projected[k], keep)
            ys.append(y)
        ys, y_prev = masked_chunk_outputs(
            jnp.stack(ys), chunk_mask, y_prev, zero_output
        )
        return (carry, y_prev), (ys if collect else None)

    if remat:
        run_chunk = jax.checkpoint(run_chunk)
    new_carry, y_shape = jax.eval_shape(
        lambda c, x: step(c, project(x[None])[0], None), carry, xs[0]
    )
    _check_step_output(cell, carry, new_carry, y_shape)
    state = (carry, jnp.zeros(y_shape.shape, y_shape.dtype))

    chunk = steps if unroll is True else min(CHUNK_STEPS, steps)
    full, tail = divmod(steps, chunk)
    parts = []
    if full == 1:
        state, ys = run_chunk(
            state, xs[:chunk], None if step_mask is None else step_mask[:chunk]
        )
        parts.append(ys)
    else:
        body_xs = xs[: full * chunk].reshape(full, chunk, *xs.shape[1:])
        body_mask = (
            None
            if step_mask is None
            else step_mask[: full * chunk].reshape(full, chunk, batch)
        )
        state, ys = lax.scan(
            lambda s, c: run_chunk(s, *c),
            state,
            (body_xs, body_mask),
            unroll=1 if unroll is False else int(unroll),
        )
        if collect:
            parts.append(ys.reshape(full * chunk, *ys.shape[2:]))
    if tail:
        state, ys = run_chunk(
            state,
            xs[full * chunk :],
            None if step_mask is None else step_mask[full * chunk :],
        )
        parts.append(ys)
    carry, last_y = state
    ys = (
        (parts[0] if len(parts) == 1 else jnp.concatenate(parts))
        if collect
        else None
    )
    return ys, last_y, carry


def _check_step_output(cell, carry, new_carry, y):
    """Raises ValueError unless a step returned (new_carry, y): new_carry
    with the structure and leaf shapes of `carry`, y one array. Checked on
    shapes (jax.eval_shape), so a cell that returns (y, new_carry) is named
    before `lax.scan` or a mask's select trips over it."""
    fits = (
        jax.tree.structure(new_carry) == jax.tree.structure(carry)
        and all(
            np.shape(a) == np.shape(b)
            for a, b in zip(jax.tree.leaves(new_carry), jax.tree.leaves(carry))
        )
        and isinstance(y, jax.ShapeDtypeStruct)
    )
    if not fits:
        raise ValueError(
            f"`cell` ({type(cell).__name__}) must return (new_carry, y): "
            f"new_carry like the carry it takes, {_describe_tree(carry)}, "
            f"and y one array; it returned ({_describe_tree(new_carry)}, "
            f"{_describe_tree(y)}). If it returns (y, new_carry), swap "
            "them."
        )


def _describe_tree(tree):
    leaves = jax.tree.leaves(tree)
    if len(leaves) == 1 and jax.tree.structure(tree).num_nodes == 1:
        return f"an array of shape {tuple(np.shape(leaves[0]))}"
    return (
        f"{jax.tree.structure(tree)} with leaf shapes "
        f"{[tuple(np.shape(leaf)) for leaf in leaves]}"
    )


def _contraction_width(cell, xs, carry):
    """D + H: the length of a row's dot products in the input and the
    recurrent projection, so the FLOPs per element they produce."""
    h_in = jax.eval_shape(
        lambda c: cell.recurrent_input(c, None, xs.dtype), carry
    )
    return xs.shape[-1] + h_in.shape[-1]


def _chunks_per_block(cell, params, chunk_xs, rows, max_bytes):
    """How many chunks of steps make a block of the hand-written backward
    pass (at least one): about `rows` GEMM rows, at most `max_bytes` of
    projections."""
    projected = jax.eval_shape(cell.project_inputs, params, chunk_xs)
    chunk_rows = projected.size // projected.shape[-1]
    chunk_bytes = projected.size * projected.dtype.itemsize
    return max(1, min(rows // chunk_rows, max_bytes // chunk_bytes))
