"""`rnn`: runs a cell over time with masks, reversal and an explicit carry.

`rnn` checks its arguments and brings them to its engines' layout
(jaxrnn/_rnn_inputs.py), picks an engine by the cell's protocol tier
(jaxrnn/protocols.py) and the options, and restores the caller's layout.
The engines and the choice between them are in jaxrnn/_engines.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn import _cudnn
from jaxrnn._engines import (
    RunOptions,
    run_parallel_scan,
    run_plain_scan,
    run_split_step,
    takes_split_step,
)
from jaxrnn._fused_plan import forward_differentiated
from jaxrnn._masking import zero_masked
from jaxrnn._rnn_inputs import (
    batched_carry,
    check_options,
    checked_inputs,
    restore_layout,
    time_major_mask,
)


def rnn(
    cell: Any,
    params: Any,
    inputs: ArrayLike,
    *,
    initial_carry: Any = None,
    mask: ArrayLike | None = None,
    seq_lengths: ArrayLike | None = None,
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
    use_cudnn: bool | str = False,
) -> tuple[jax.Array, Any]:
    """Runs `cell` over the time axis of `inputs`.

    Args:
      cell: a built-in cell, `StackedCells`, or any object with ``init``,
        ``initial_carry(batch_shape)`` and ``cell(params, carry, x, *, key,
        training) -> (carry, y)``. Cells that also offer ``dropout_masks``,
        ``project_inputs`` and ``step_projected`` get the input projection
        hoisted out of the recurrence; those that further split a step into
        ``recurrent_input``, ``project_recurrent`` and elementwise
        ``apply_gates`` (the built-in LSTM, GRU with ``reset_after``,
        SimpleRNN and sLSTM) also get a hand-written backward pass that
        saves the carries, and for wide cells the projections (see the
        design notes, "The backward pass"); a cell whose
        ``gates_take_keep`` is true takes ``apply_gates(..., keep=)`` and
        holds masked steps itself (LSTM, GRU), other cells' carries are
        selected. A cell whose steps
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
      parallel: run the cell's whole-sequence form: a linear recurrence
        as one `jax.lax.associative_scan` (cells with
        ``parallel_coefficients``: `MinGRUCell`, `MinLSTMCell`, `LRUCell`,
        `RGLRUCell`), or the cell's own ``parallel_run`` (`MLSTMCell`'s
        chunkwise form), and `StackedCells` of them; the protocol is in
        jaxrnn/_parallel.py. The sequential run's numbers up to float
        rounding, gradients too, in O(log T) depth (chunkwise: T /
        chunk_size dependent steps). It pays off on accelerators, and on a
        CPU only for narrow steps (benchmarks/PARALLEL.md). `unroll` and
        `remat` do not apply.
      return_sequences: return all outputs, else the last one (with a mask:
        each row's output at its last valid step, zeros if it has none).
      zero_output_for_mask: masked steps output zeros in the sequence.
      key: PRNG key for dropout, used only when `training`.
      training: turn dropout on.
      use_cudnn: run an `LSTMCell` (or a `StackedCells` of equal-width
        ones) as one cuDNN call (`jax.experimental.rnn`) on a CUDA GPU:
        ``'auto'`` where it applies (tanh and sigmoid, a bias, no recurrent
        dropout in training, not ``unroll=True`` or `remat`, float32, and
        no mask or a right-padded one; a traced mask is checked when the
        program runs, falling back to the scan); True to insist (a clear
        error where it cannot apply, naming why; a traced mask must then
        come as `seq_lengths`); False (the default here; the layers
        default to ``'auto'``, as Keras') never. Same numbers as the scan
        (cuDNN lets float32 matmuls use TF32 unless the cell's
        ``precision`` is ``'highest'``); under `jax.vmap` the numbers come
        from `jax.experimental.rnn.lstm_ref` instead (cuDNN cannot batch).

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
        _cudnn.check_use_cudnn(use_cudnn)
        input_ndim = getattr(cell, "input_ndim", 1)
        xs, batched = checked_inputs(inputs, time_major, input_ndim)
        time_axis = 1 if batched and not time_major else 0
        steps, batch = xs.shape[time_axis], xs.shape[1 - time_axis]
        features = xs.shape[2] if input_ndim == 1 else xs.shape[2:]
        if hasattr(cell, "check_params"):
            cell.check_params(params, features)
        step_mask = time_major_mask(
            mask, seq_lengths, batched, time_major, steps, batch
        )
        carry = batched_carry(cell, initial_carry, batched, batch)
        forward_mode = forward_differentiated((params, xs, carry))

        def scan_path() -> tuple[Any, Any]:
            return _scan_path(
                cell,
                params,
                xs,
                step_mask,
                carry,
                batched=batched,
                time_major=time_major,
                go_backwards=go_backwards,
                keep_order=keep_order,
                forward_mode=forward_mode,
                options=RunOptions(
                    time_axis=time_axis,
                    key=key,
                    training=training,
                    unroll=unroll,
                    remat=remat,
                    zero_output=zero_output_for_mask,
                    collect=return_sequences,
                ),
                parallel=parallel,
            )

        cudnn_path = None
        if use_cudnn is not False and not parallel:
            cudnn_path = _cudnn.plan_rnn(
                cell,
                params,
                xs,
                step_mask,
                carry,
                use_cudnn=use_cudnn,
                from_lengths=seq_lengths is not None,
                batched=batched,
                time_major=time_major,
                go_backwards=go_backwards,
                keep_order=keep_order,
                unroll=unroll,
                remat=remat,
                zero_output=zero_output_for_mask,
                collect=return_sequences,
                key=key,
                training=training,
                forward_mode=forward_mode,
            )
        if cudnn_path is None:
            outputs, carry = scan_path()
        elif cudnn_path.check_mask:
            # A traced mask: cuDNN where it is right-padded, else the scan.
            outputs, carry = jax.lax.cond(
                _cudnn.is_right_padded(step_mask),
                cudnn_path.run,
                scan_path,
            )
        else:
            outputs, carry = cudnn_path.run()
        if not batched:
            carry = jax.tree.map(lambda leaf: leaf[0], carry)
        return outputs, carry


def _scan_path(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    *,
    batched: bool,
    time_major: bool,
    go_backwards: bool,
    keep_order: bool,
    forward_mode: bool,
    options: RunOptions,
    parallel: bool,
) -> tuple[jax.Array, Any]:
    """`rnn` through its own engines: (outputs in the caller's layout,
    batched final carry)."""
    # The split-step scan reads batch-major inputs and writes batch-major
    # outputs a chunk at a time; everything else runs on a time-major copy.
    time_axis = options.time_axis
    batch = xs.shape[1 - time_axis]
    features = (
        xs.shape[2] if getattr(cell, "input_ndim", 1) == 1 else xs.shape[2:]
    )
    split_step = (
        not parallel
        and takes_split_step(
            cell,
            options.unroll,
            options.training,
            options.key,
            batch,
            features,
        )
        and not forward_mode
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
        run_split_step
        if split_step
        else run_parallel_scan
        if parallel
        else run_plain_scan
    )
    ys, last_y, carry = engine(
        cell,
        params,
        xs,
        step_mask,
        carry,
        dataclasses.replace(options, time_axis=time_axis),
    )
    if ys is None:  # without return_sequences
        return (last_y if batched else last_y[0]), carry
    if go_backwards and keep_order:
        ys = jnp.flip(ys, time_axis)
    if time_axis == 1:
        return ys, carry
    return restore_layout(ys, batched, time_major), carry
