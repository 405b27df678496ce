"""cuDNN's fused LSTM (`jax.experimental.rnn`) behind `rnn`'s meaning.

On a CUDA GPU an LSTM whose settings cuDNN computes (Keras' conditions:
tanh and sigmoid, a bias, no recurrent dropout, no Python unroll, and a
right-padded mask, which becomes cuDNN's sequence lengths) runs as one
cuDNN call: a single `LSTMCell`, a `StackedCells` of equal-width LSTMs (one
multi-layer call) or, through `Bidirectional`, both directions at once.
Everything `rnn` promises stays true: Keras' output order for
`go_backwards`, the previous output (or zeros) at masked steps, each row's
last valid output and carry, the carry in Keras' order ``(h, c)``,
gradients, and `jax.vmap` (cuDNN has no batching rule; under `vmap` the same
numbers come from `jax.experimental.rnn.lstm_ref`).

`cudnn_refusal` decides, as a pure function of the settings, the mask's
layout and the backend's name; `plan_rnn` brings an `rnn` call to the
kernel (jaxrnn/_cudnn_kernel.py) and back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import core, lax

from jaxrnn import activations
from jaxrnn._cudnn_kernel import KernelConfig, pack_weights, run_kernel
from jaxrnn._rnn_inputs import restore_layout
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.stacked import StackedCells

USE_CUDNN = ("auto", True, False)

# How a mask reads, for `cudnn_refusal`: no mask, `seq_lengths`, a concrete
# mask that is (or is not) right-padded, or a traced one (unknown until run).
MASK_LAYOUTS = (
    "none",
    "lengths",
    "right-padded",
    "not right-padded",
    "traced",
)


def check_use_cudnn(value: Any) -> None:
    """Raises unless `value` is "auto", True or False."""
    if not (value == "auto" or isinstance(value, bool)):
        raise ValueError(
            f"`use_cudnn` must be 'auto', True or False, got {value!r}."
        )


def backend_name() -> str:
    """'cuda' or 'rocm' for a GPU backend, else JAX's name ('cpu', 'tpu')."""
    backend = jax.default_backend()
    if backend != "gpu":
        return backend
    version = str(getattr(jax.devices()[0].client, "platform_version", ""))
    return "rocm" if "rocm" in version.lower() else "cuda"


def lstm_cells(cell: Any) -> tuple[Any, ...]:
    """The LSTM layers `cell` stands for: itself, or a stack's cells."""
    return tuple(cell.cells) if isinstance(cell, StackedCells) else (cell,)


def _is(name: str, activation: Any) -> bool:
    try:
        return activations.get(activation) is activations.get(name)
    except (ValueError, TypeError):
        return False


def kernel_precision(precision: Any) -> lax.Precision:
    """The precision cuDNN is asked for: HIGHEST keeps float32 matmuls,
    anything else lets cuDNN use TF32 on GPUs that have it (XLA's own
    default for float32 matmuls there)."""
    if precision is None:
        precision = getattr(jax.config, "jax_default_matmul_precision", None)
    if isinstance(precision, (tuple, list)):
        precision = precision[0]
    if precision is None:
        return lax.Precision.HIGH
    if isinstance(precision, str):
        precision = lax.Precision(precision.lower())
    if lax.Precision(precision) == lax.Precision.HIGHEST:
        return lax.Precision.HIGHEST
    return lax.Precision.HIGH


def cudnn_refusal(
    cell: Any,
    *,
    backend: str,
    mask_layout: str = "none",
    unroll: bool | int = False,
    remat: bool = False,
    training: bool = False,
    compute_dtypes: Sequence[Any] = ("float32",),
    forward_mode: bool = False,
) -> str | None:
    """Why cuDNN's LSTM cannot run `cell` with these settings, or None when
    it can.

    Args:
      cell: an `LSTMCell` or a `StackedCells` of them.
      backend: `backend_name()`'s value ('cuda', 'cpu', ...).
      mask_layout: one of `MASK_LAYOUTS`; a traced mask is not a refusal
        here (its layout is checked when the program runs).
      unroll: `rnn`'s unroll (True: a Python loop).
      remat: `rnn`'s remat (the scan's checkpointed backward pass).
      training: whether dropout is on.
      compute_dtypes: the dtypes the step would compute in and the carry's.
      forward_mode: whether the call carries forward-mode tangents.

    Returns:
      A sentence naming the first setting that rules cuDNN out, or None.
    """
    if mask_layout not in MASK_LAYOUTS:
        raise ValueError(
            f"`mask_layout` must be one of {MASK_LAYOUTS}, got {mask_layout!r}."
        )
    if backend != "cuda":
        return f"the backend is {backend!r}; cuDNN needs a CUDA GPU"
    cells = lstm_cells(cell)
    for layer in cells:
        if type(layer) is not LSTMCell:
            return (
                "cuDNN runs LSTMCell (or StackedCells of them), got "
                f"{type(layer).__name__}"
            )
        if not _is("tanh", layer.activation):
            return f"activation={layer.activation!r} (cuDNN computes tanh)"
        if not _is("sigmoid", layer.recurrent_activation):
            return (
                f"recurrent_activation={layer.recurrent_activation!r} "
                "(cuDNN computes sigmoid)"
            )
        if not layer.use_bias:
            return "use_bias=False (Keras' cuDNN condition: a bias)"
        if training and layer.recurrent_dropout > 0:
            return (
                f"recurrent_dropout={layer.recurrent_dropout} in training "
                "(cuDNN has no recurrent dropout)"
            )
    if len(cells) > 1:
        widths = {layer.units for layer in cells}
        if len(widths) > 1:
            return (
                f"stacked LSTMs of units {[c.units for c in cells]} "
                "(one cuDNN call stacks layers of one width)"
            )
        if training and any(layer.dropout > 0 for layer in cells):
            return (
                "dropout in training in a stack (cuDNN drops between layers)"
            )
    for dtype in compute_dtypes:
        if jnp.dtype(dtype) != jnp.float32:
            return (
                f"compute dtype {jnp.dtype(dtype).name} "
                "(jax.experimental.rnn's cuDNN LSTM is float32 only)"
            )
    if unroll is True:
        return "unroll=True (a Python loop over the steps)"
    if remat:
        return "remat=True (asks for the scan's checkpointed backward pass)"
    if forward_mode:
        return (
            "forward-mode differentiation (cuDNN's LSTM has only a "
            "reverse-mode rule)"
        )
    if mask_layout == "not right-padded":
        return (
            "a mask that is not right-padded (cuDNN reads sequence lengths: "
            "each row's valid steps first)"
        )
    return None


def mask_layout(
    step_mask: jax.Array | None, from_lengths: bool, *, read: bool = True
) -> str:
    """`MASK_LAYOUTS` entry of a (T, B) step mask; without `read` a
    concrete mask is not brought to the host and reads as "traced"."""
    if step_mask is None:
        return "none"
    if from_lengths:
        return "lengths"
    if not read or isinstance(step_mask, core.Tracer):
        return "traced"
    return (
        "right-padded"
        if bool(is_right_padded(np.asarray(step_mask), np))
        else "not right-padded"
    )


def is_right_padded(step_mask: Any, xp: Any = jnp) -> Any:
    """Whether every column of a (T, B) mask is True then False."""
    lengths = step_mask.sum(0)
    steps = xp.arange(step_mask.shape[0])[:, None]
    return xp.all(step_mask == (steps < lengths[None, :]))


def _flip_valid(xs: jax.Array, lengths: jax.Array) -> jax.Array:
    """Each row of (B, T, ...) with its first `lengths` steps reversed and
    the rest in place."""
    steps = jnp.arange(xs.shape[1])[None, :]
    index = jnp.where(
        steps < lengths[:, None], lengths[:, None] - 1 - steps, steps
    )
    return _take_steps(xs, index)


def _take_steps(xs: jax.Array, index: jax.Array) -> jax.Array:
    index = index.reshape(*index.shape, *([1] * (xs.ndim - 2)))
    return jnp.take_along_axis(xs, index, axis=1)


def sequence_outputs(
    ys: jax.Array,
    last: jax.Array,
    lengths: jax.Array | None,
    *,
    go_backwards: bool,
    keep_order: bool,
    zero_output: bool,
) -> jax.Array:
    """One direction's (B, T, H) outputs, as `rnn` returns them, from a
    kernel's `ys` aligned with the inputs (zeros at padded steps).

    Forwards a masked step repeats the previous output (`last`, each row's
    last valid one), or outputs zeros with `zero_output`. Backwards the
    masked steps come first in processing order, where the previous output
    is still zeros: either way the aligned outputs flipped, unless
    `keep_order`.
    """
    if go_backwards:
        return ys if keep_order else jnp.flip(ys, 1)
    if lengths is None or zero_output:
        return ys
    valid = jnp.arange(ys.shape[1])[None, :] < lengths[:, None]
    return jnp.where(valid[..., None], ys, last[:, None, :])


def last_outputs(h_last: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Each row's output at its last valid step: the last layer's h,
    zeros for a row without one."""
    if lengths is None:
        return h_last
    return jnp.where(
        (lengths > 0)[:, None], h_last, jnp.zeros((), h_last.dtype)
    )


def run_rnn(
    cell: Any,
    params: Any,
    xs: jax.Array,
    lengths: jax.Array | None,
    carry: Any,
    *,
    go_backwards: bool,
    keep_order: bool,
    zero_output: bool,
    collect: bool,
    input_dropout: jax.Array | None,
) -> tuple[jax.Array | None, jax.Array, Any]:
    """`rnn` for an eligible `cell` through one kernel call.

    Args:
      cell: an `LSTMCell` or a `StackedCells` of them.
      params: its params (a list for a stack).
      xs: (B, T, D) batch-major inputs.
      lengths: (B,) int valid steps (right-padded), or None.
      carry: ``(h, c)`` (B, H) each, a tuple of them for a stack.
      go_backwards, keep_order, zero_output, collect: `rnn`'s options
        (`collect` is return_sequences).
      input_dropout: the first layer's (B, D) input dropout multiplier.

    Returns:
      (outputs (B, T, H) or None, last outputs (B, H), final carry).
    """
    cells = lstm_cells(cell)
    stacked = isinstance(cell, StackedCells)
    layer_params = list(params) if stacked else [params]
    layer_carries = list(carry) if stacked else [carry]
    xs = xs.astype(jnp.float32)
    if input_dropout is not None:
        xs = xs * input_dropout.astype(jnp.float32)[:, None, :]
    if go_backwards:
        xs = jnp.flip(xs, 1) if lengths is None else _flip_valid(xs, lengths)
    config = KernelConfig(
        input_size=xs.shape[-1],
        hidden_size=cells[0].units,
        num_layers=len(cells),
        bidirectional=False,
        precision=kernel_precision(cells[0].precision),
    )
    run = run_kernel(
        xs,
        lengths,
        jnp.stack([c[0] for c in layer_carries]).astype(jnp.float32),
        jnp.stack([c[1] for c in layer_carries]).astype(jnp.float32),
        pack_weights([[p] for p in layer_params]),
        config,
    )
    ys = run.ys
    if go_backwards and lengths is not None:
        ys = _flip_valid(ys, lengths)  # aligned with the inputs
    elif go_backwards:
        ys = jnp.flip(ys, 1)
    last = last_outputs(run.h[-1], lengths)
    outputs = None
    if collect:
        outputs = sequence_outputs(
            ys,
            last,
            lengths,
            go_backwards=go_backwards,
            keep_order=keep_order,
            zero_output=zero_output,
        )
    carries = tuple((run.h[i], run.c[i]) for i in range(len(cells)))
    return outputs, last, carries if stacked else carries[0]


class Plan(NamedTuple):
    """`rnn` through cuDNN: ``run() -> (outputs, batched final carry)`` in
    the caller's layout; with `check_mask` the caller runs it only where
    the (traced) mask turns out right-padded."""

    run: Callable[[], tuple[Any, Any]]
    check_mask: bool


def plan_rnn(
    cell: Any,
    params: Any,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    *,
    use_cudnn: bool | str,
    from_lengths: bool,
    batched: bool,
    time_major: bool,
    go_backwards: bool,
    keep_order: bool,
    unroll: bool | int,
    remat: bool,
    zero_output: bool,
    collect: bool,
    key: jax.Array | None,
    training: bool,
    forward_mode: bool,
) -> Plan | None:
    """The cuDNN run of an `rnn` call, or None where it does not apply and
    `use_cudnn` is 'auto'.

    `xs` is as `rnn` holds it: (B, T, D), or time-major (T, B, D) for
    time-major and unbatched calls; `step_mask` (T, B) or None.

    Raises:
      ValueError: with ``use_cudnn=True``, naming why cuDNN cannot run
        the call.
    """
    backend = backend_name()
    if use_cudnn == "auto" and backend != "cuda":
        return None  # the common case off a GPU, decided at once
    cells = lstm_cells(cell)
    layer_params = list(params) if isinstance(cell, StackedCells) else [params]
    dtypes: list[Any] = ["float32"]
    if all(type(layer) is LSTMCell for layer in cells):
        dtypes = [
            layer.compute_dtype(p, xs) for layer, p in zip(cells, layer_params)
        ] + [leaf.dtype for leaf in jax.tree.leaves(carry)]
    layout = mask_layout(step_mask, from_lengths, read=backend == "cuda")
    refusal = cudnn_refusal(
        cell,
        backend=backend,
        mask_layout=layout,
        unroll=unroll,
        remat=remat,
        training=training,
        compute_dtypes=dtypes,
        forward_mode=forward_mode,
    )
    if refusal is None and layout == "traced" and use_cudnn is True:
        refusal = (
            "a traced mask, which may not be right-padded (pass the lengths "
            "as `seq_lengths`, or use_cudnn='auto' to check the mask when "
            "the program runs)"
        )
    if refusal is not None:
        if use_cudnn is True:
            raise ValueError(
                f"use_cudnn=True, but cuDNN's LSTM cannot run this call: "
                f"{refusal}. Use use_cudnn='auto' to run the scan where "
                "cuDNN does not apply."
            )
        return None
    time_axis = 1 if batched and not time_major else 0
    batch = xs.shape[1 - time_axis]
    input_dropout = None
    if training and cells[0].dropout > 0:
        masks = cells[0].dropout_masks(
            key, (batch,), xs.shape[-1], training=True
        )
        input_dropout = None if masks is None else masks.inputs

    def run() -> tuple[Any, Any]:
        lengths = None if step_mask is None else step_mask.sum(0)
        outputs, last, final = run_rnn(
            cell,
            params,
            xs if time_axis == 1 else jnp.swapaxes(xs, 0, 1),
            lengths,
            carry,
            go_backwards=go_backwards,
            keep_order=keep_order,
            zero_output=zero_output,
            collect=collect,
            input_dropout=input_dropout,
        )
        # In the caller's carry structure (a list [h, c] stays a list).
        final = jax.tree.unflatten(
            jax.tree.structure(carry),
            [
                new.astype(old.dtype)
                for new, old in zip(
                    jax.tree.leaves(final), jax.tree.leaves(carry)
                )
            ],
        )
        if outputs is None:
            return (last if batched else last[0]), final
        if time_axis == 1:
            return outputs, final
        return restore_layout(
            jnp.swapaxes(outputs, 0, 1), batched, time_major
        ), final

    return Plan(run, check_mask=layout == "traced")
