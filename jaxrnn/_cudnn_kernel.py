"""The kernel behind jaxrnn/_cudnn.py: `jax.experimental.rnn`'s cuDNN LSTM
with a backward pass and a `jax.vmap` rule, and Keras' params packed into
cuDNN's flat weight vector.

`KERNEL` is the only place that touches the GPU; the tests replace it with
`jax.experimental.rnn.lstm_ref` (which JAX tests against cuDNN) to check
the rest on a CPU.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


class KernelConfig(NamedTuple):
    """`jax.experimental.rnn.lstm`'s static arguments."""

    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    precision: lax.Precision


def _reference_forward(config: KernelConfig, x, h0, c0, weights, lengths):
    """The kernel's numbers from `jax.experimental.rnn.lstm_ref`, which JAX
    tests against cuDNN: runs anywhere, batches, differentiates."""
    from jax.experimental import rnn as jax_rnn

    unpacked = jax_rnn.unpack_lstm_weights(
        weights,
        config.input_size,
        config.hidden_size,
        config.num_layers,
        config.bidirectional,
    )
    return jax_rnn.lstm_ref(
        x,
        h0,
        c0,
        *unpacked,
        lengths,
        config.input_size,
        config.hidden_size,
        config.num_layers,
        0.0,
        config.bidirectional,
    )


@dataclasses.dataclass(frozen=True)
class Kernel:
    """cuDNN's forward and backward LSTM: ``forward(config, x, h0, c0,
    weights, lengths) -> ((y, h_n, c_n), residuals)`` and ``backward(config,
    residuals, (dy, dh_n, dc_n)) -> (dx, dh0, dc0, dweights)``, with
    `jax.experimental.rnn.lstm`'s layouts."""

    forward: Callable[..., Any]
    backward: Callable[..., Any]


def _cudnn_forward(config: KernelConfig, x, h0, c0, weights, lengths):
    from jax.experimental import rnn as jax_rnn

    return jax_rnn.lstm_fwd(
        x,
        h0,
        c0,
        weights,
        lengths,
        config.input_size,
        config.hidden_size,
        config.num_layers,
        0.0,
        config.bidirectional,
        config.precision,
    )


def _cudnn_backward(config: KernelConfig, residuals, cotangents):
    from jax.experimental import rnn as jax_rnn

    return jax_rnn.lstm_bwd(
        config.input_size,
        config.hidden_size,
        config.num_layers,
        0.0,
        config.bidirectional,
        config.precision,
        residuals,
        cotangents,
    )[:4]


KERNEL = Kernel(_cudnn_forward, _cudnn_backward)


def _vmapped(call: Callable, rule_call: Callable) -> Callable:
    """`call`, whose primitives cannot batch, with `rule_call` (same
    signature, batchable) standing in under `jax.vmap`."""
    wrapped = jax.custom_batching.custom_vmap(call)

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        del axis_size
        in_axes = tuple(
            jax.tree.map(lambda b: 0 if b else None, batched)
            for batched in in_batched
        )
        out = jax.vmap(rule_call, in_axes=in_axes)(*args)
        return out, jax.tree.map(lambda _: True, out)

    return wrapped


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm(config: KernelConfig, x, h0, c0, weights, lengths):
    return _forward(config, x, h0, c0, weights, lengths)[0]


def _forward(config, x, h0, c0, weights, lengths):
    def reference(x, h0, c0, weights, lengths):
        out = _reference_forward(config, x, h0, c0, weights, lengths)
        # Under vmap the backward pass recomputes from the inputs, so the
        # residuals need only their structure: zeros in cuDNN's shapes.
        _, residuals = jax.eval_shape(
            functools.partial(KERNEL.forward, config),
            x,
            h0,
            c0,
            weights,
            lengths,
        )
        return out, jax.tree.map(
            lambda r: jnp.zeros(r.shape, r.dtype), residuals
        )

    call = _vmapped(functools.partial(KERNEL.forward, config), reference)
    return call(x, h0, c0, weights, lengths)


def _lstm_fwd(config, x, h0, c0, weights, lengths):
    out, residuals = _forward(config, x, h0, c0, weights, lengths)
    return out, ((x, h0, c0, weights, lengths), residuals)


def _lstm_bwd(config, saved, cotangents):
    inputs, residuals = saved

    def reference(inputs, residuals, cotangents):
        del residuals
        x, h0, c0, weights, lengths = inputs
        _, pullback = jax.vjp(
            lambda x, h0, c0, weights: _reference_forward(
                config, x, h0, c0, weights, lengths
            ),
            x,
            h0,
            c0,
            weights,
        )
        return pullback(cotangents)

    call = _vmapped(
        lambda inputs, residuals, cotangents: tuple(
            KERNEL.backward(config, residuals, cotangents)
        ),
        reference,
    )
    dx, dh0, dc0, dweights = call(inputs, residuals, tuple(cotangents))
    return dx, dh0, dc0, dweights, None


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def pack_weights(directions_by_layer: Sequence[Sequence[dict]]) -> jax.Array:
    """cuDNN's flat weight vector from Keras' params.

    Args:
      directions_by_layer: for each layer, its directions' params
        ``{'kernel': (D, 4H), 'recurrent_kernel': (H, 4H), 'bias': (4H,)}``
        (one direction, or forward then backward).

    Returns:
      (P,): every pseudo-layer's W_ih (4H, D) and W_hh (4H, H), then every
      pseudo-layer's b_ih (Keras' bias) and b_hh (zeros). Keras' gate order
      i, f, c, o is cuDNN's i, f, g, o.
    """
    pseudo = [p for layer in directions_by_layer for p in layer]
    matrices = [
        m
        for p in pseudo
        for m in (
            jnp.asarray(p["kernel"], jnp.float32).T.ravel(),
            jnp.asarray(p["recurrent_kernel"], jnp.float32).T.ravel(),
        )
    ]
    biases = [
        b
        for p in pseudo
        for b in (
            jnp.asarray(p["bias"], jnp.float32),
            jnp.zeros(np.shape(p["bias"]), jnp.float32),
        )
    ]
    return jnp.concatenate(matrices + biases)


class Run(NamedTuple):
    """What one kernel call returns, in Keras' terms: `ys` (B, T, dirs*H),
    zeros at padded steps, each direction aligned with the inputs; `h`, `c`
    (layers*dirs, B, H), each row's at its last valid step (its initial
    carry where it has none)."""

    ys: jax.Array
    h: jax.Array
    c: jax.Array


def run_kernel(
    xs: jax.Array,
    lengths: jax.Array | None,
    h0: jax.Array,
    c0: jax.Array,
    weights: jax.Array,
    config: KernelConfig,
) -> Run:
    """One cuDNN call on batch-major float32 `xs` (B, T, D).

    Rows of length 0 (which cuDNN does not take) run one zero step whose
    results are discarded; padded inputs are zeroed first, so NaN there
    reaches neither the outputs nor the gradients.
    """
    batch, steps = xs.shape[:2]
    if lengths is None:
        lengths = jnp.full((batch,), steps, jnp.int32)
        empty = None
    else:
        lengths = lengths.astype(jnp.int32)
        valid = jnp.arange(steps)[None, :] < lengths[:, None]
        xs = jnp.where(valid[..., None], xs, jnp.zeros((), xs.dtype))
        empty = lengths == 0
    ys, h, c = _lstm(config, xs, h0, c0, weights, jnp.maximum(lengths, 1))  # pyright: ignore[reportGeneralTypeIssues]
    if empty is not None:
        ys = jnp.where(empty[:, None, None], jnp.zeros((), ys.dtype), ys)
        h = jnp.where(empty[None, :, None], h0, h)
        c = jnp.where(empty[None, :, None], c0, c)
    return Run(ys, h, c)
