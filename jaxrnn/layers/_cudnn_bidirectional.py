"""Bidirectional(LSTM) as one cuDNN call: both directions at once.

`Bidirectional` asks `fused_call` first; it returns None where one call
cannot run the pair (and the two layers then run as usual, each taking
cuDNN on its own where it can).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import _cudnn
from jaxrnn._cudnn_kernel import KernelConfig, pack_weights, run_kernel
from jaxrnn._fused_plan import forward_differentiated
from jaxrnn._rnn_inputs import (
    batched_carry,
    checked_inputs,
    restore_layout,
    time_major_mask,
)
from jaxrnn.cells.lstm import LSTMCell


def run_bidirectional(
    cells: tuple[Any, Any],
    params: tuple[Any, Any],
    xs: jax.Array,
    lengths: jax.Array | None,
    carries: tuple[Any, Any],
    *,
    collect: bool,
    input_dropout: tuple[jax.Array | None, jax.Array | None],
) -> tuple[tuple[jax.Array, jax.Array], tuple[Any, Any]]:
    """Both directions of a Bidirectional LSTM in one kernel call.

    Args:
      cells: the forward and backward `LSTMCell`s (same units).
      params: their params.
      xs: (B, T, D) batch-major inputs.
      lengths: (B,) valid steps (right-padded), or None.
      carries: each direction's ``(h, c)``, (B, H) each.
      collect: return sequences (zeros at masked steps, as Bidirectional
        asks of both directions), else each direction's last output.
      input_dropout: each direction's (B, D) input dropout multiplier.

    Returns:
      ((forward, backward) outputs, (forward, backward) carries); both
      sequences aligned with the inputs (the backward one flipped back, as
      Bidirectional merges it).
    """
    xs = xs.astype(jnp.float32)
    if any(mask is not None for mask in input_dropout):
        # Each direction reads its own dropped-out inputs: run two calls.
        runs = [
            _cudnn.run_rnn(
                cell,
                p,
                xs,
                lengths,
                carry,
                go_backwards=backwards,
                keep_order=backwards,
                zero_output=True,
                collect=collect,
                input_dropout=mask,
            )
            for cell, p, carry, backwards, mask in zip(
                cells, params, carries, (False, True), input_dropout
            )
        ]
        outputs = [run[0] if collect else run[1] for run in runs]
        assert outputs[0] is not None and outputs[1] is not None
        return (outputs[0], outputs[1]), (runs[0][2], runs[1][2])
    units = cells[0].units
    config = KernelConfig(
        input_size=xs.shape[-1],
        hidden_size=units,
        num_layers=1,
        bidirectional=True,
        precision=_cudnn.kernel_precision(cells[0].precision),
    )
    run = run_kernel(
        xs,
        lengths,
        jnp.stack([carries[0][0], carries[1][0]]).astype(jnp.float32),
        jnp.stack([carries[0][1], carries[1][1]]).astype(jnp.float32),
        pack_weights([[params[0], params[1]]]),
        config,
    )
    final = ((run.h[0], run.c[0]), (run.h[1], run.c[1]))
    if not collect:
        return (
            _cudnn.last_outputs(run.h[0], lengths),
            _cudnn.last_outputs(run.h[1], lengths),
        ), final
    return (run.ys[..., :units], run.ys[..., units:]), final


def fused_call(
    bidirectional: Any,
    params: dict[str, Any],
    inputs: Any,
    mask: Any,
    states: tuple[Any, Any],
    keys: tuple[jax.Array | None, jax.Array | None],
    training: bool,
    separate: Callable[[], tuple[jax.Array, jax.Array, list[jax.Array]]],
) -> tuple[jax.Array, jax.Array, list[jax.Array]] | None:
    """Both directions of `bidirectional` in one cuDNN call, or None.

    Args:
      separate: the layers run one after the other, the same results (the
        fallback for a traced mask that turns out not right-padded).

    Returns:
      (forward output, backward output aligned with the inputs, the
      forward then backward states with ``return_state`` or ``stateful``,
      else []), each in the layer's layout; None where the pair is not two
      LSTM layers that cuDNN runs together.

    Raises:
      ValueError: a layer with ``use_cudnn=True`` that cuDNN cannot run.
    """
    forward, backward = (
        bidirectional.forward_layer,
        bidirectional.backward_layer,
    )
    layers = (forward, backward)
    choices = [getattr(layer, "use_cudnn", False) for layer in layers]
    if False in choices or backward.go_backwards is not True:
        return None
    cells = (forward.cell, backward.cell)
    if not all(type(cell) is LSTMCell for cell in cells):
        return None
    if (
        cells[0].units != cells[1].units
        or forward.time_major != backward.time_major
    ):
        return None
    backend = _cudnn.backend_name()
    if backend != "cuda" and True not in choices:
        return None
    inputs = forward._float_inputs(params["forward"], inputs)
    shape = tuple(np.shape(inputs))
    forward._check_call_inputs(shape)
    xs, batched = checked_inputs(inputs, forward.time_major)
    time_axis = 1 if batched and not forward.time_major else 0
    steps, batch = xs.shape[time_axis], xs.shape[1 - time_axis]
    step_mask = time_major_mask(
        mask, None, batched, forward.time_major, steps, batch
    )
    carries = []
    for layer, cell, p, state in zip(
        layers, cells, (params["forward"], params["backward"]), states
    ):
        cell.check_params(p, xs.shape[-1])
        carries.append(
            batched_carry(
                cell,
                layer._carry_from_state(cell, state, shape),
                batched,
                batch,
            )
        )
    layout = _cudnn.mask_layout(step_mask, False, read=backend == "cuda")
    if layout == "traced" and True in choices:
        return None  # the layers refuse it, naming seq_lengths
    for layer, cell, p, carry in zip(
        layers, cells, (params["forward"], params["backward"]), carries
    ):
        refusal = _cudnn.cudnn_refusal(
            cell,
            backend=backend,
            mask_layout=layout,
            unroll=layer.unroll,
            remat=layer.remat,
            training=training,
            compute_dtypes=[cell.compute_dtype(p, xs)]
            + [leaf.dtype for leaf in jax.tree.leaves(carry)],
            forward_mode=forward_differentiated((p, xs, carry)),
        )
        if refusal is None:
            continue
        if layer.use_cudnn is True:
            raise ValueError(
                f"use_cudnn=True, but cuDNN's LSTM cannot run this "
                f"Bidirectional layer: {refusal}. Use use_cudnn='auto' to "
                "run the scan where cuDNN does not apply."
            )
        return None
    dropout = []
    for cell, key in zip(cells, keys):
        masks = cell.dropout_masks(
            key, (batch,), xs.shape[-1], training=training
        )
        dropout.append(None if masks is None else masks.inputs)
    with_states = bidirectional.return_state or bidirectional.stateful

    def run() -> tuple[jax.Array, jax.Array, list[jax.Array]]:
        outputs, finals = run_bidirectional(
            cells,
            (params["forward"], params["backward"]),
            xs if time_axis == 1 else jnp.swapaxes(xs, 0, 1),
            None if step_mask is None else step_mask.sum(0),
            (carries[0], carries[1]),
            collect=forward.return_sequences,
            input_dropout=(dropout[0], dropout[1]),
        )
        if forward.return_sequences and time_axis == 0:
            outputs = tuple(
                restore_layout(
                    jnp.swapaxes(y, 0, 1), batched, forward.time_major
                )
                for y in outputs
            )
        elif not batched:
            outputs = tuple(y[0] for y in outputs)
        leaves = [leaf for final in finals for leaf in final]
        if not batched:
            leaves = [leaf[0] for leaf in leaves]
        return outputs[0], outputs[1], leaves if with_states else []

    if layout == "traced":
        # cuDNN where the mask turns out right-padded, else each layer.
        return jax.lax.cond(_cudnn.is_right_padded(step_mask), run, separate)
    return run()
