"""One function per peer: its implementation of a workload, fed jaxrnn's
weights through a layout conversion (benchmarks/layouts.py).

A peer function takes a `Workload` and returns a `JaxPeer` or `TorchPeer`,
or raises `Unsupported` with the reason (library missing, no API for masks,
different maths). Libraries are imported inside the functions, so a missing
one skips its rows only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import layouts
import reference_rnn
from jax import lax
from workloads import Workload, jaxrnn_cell

import jaxrnn


class Unsupported(Exception):
    """The peer cannot run this workload; the message says why."""


class NotApplicable(Unsupported):
    """The row makes no sense here (a GRU-only row for an LSTM): no row."""


@dataclasses.dataclass
class JaxPeer:
    """A JAX peer.

    Attributes:
      label: the row's name.
      convert: jaxrnn params -> the peer's params (differentiable).
      forward: (peer params, x (B, T, D), lengths (B,) or None) -> (B, T, H').
      group: "jaxrnn", "reference" or "jax" (a JAX library).
      oracle: the name of the jaxrnn maths the check compares with (ORACLES).
      comparable: the same maths and work as the workload, so the row may be
        "the fastest peer".
      note: shown beside the row.
      modes: which of "forward" and "train" to run.
    """

    label: str
    convert: Callable[[Any], Any]
    forward: Callable[..., jax.Array]
    group: str = "jax"
    oracle: str = "jaxrnn"
    comparable: bool = True
    note: str = ""
    modes: tuple[str, ...] = ("forward", "train")


@dataclasses.dataclass
class TorchPeer:
    """PyTorch: `convert` gives a state dict (of jax arrays), `forward` runs
    ``(module, x, lengths)`` with torch tensors."""

    label: str
    convert: Callable[[Any], dict]
    module: Any
    forward: Callable[..., Any]
    group: str = "torch"
    oracle: str = "jaxrnn"
    comparable: bool = True
    note: str = ""


def _per_direction(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    def apply(params):
        if "forward" in params:
            return {name: fn(p) for name, p in params.items()}
        return fn(params)

    return apply


def jaxrnn_forward(
    workload: Workload,
    *,
    remat: bool = False,
    use_cudnn: bool | str = "auto",
    **cell_kwargs,
) -> Callable[..., jax.Array]:
    """jaxrnn's outputs (B, T, H) (bidirectional: (B, T, 2H), concat), with
    the layers' default use_cudnn='auto' (cuDNN for an LSTM on a GPU)."""
    lstm = workload.cell == "LSTM"
    if workload.bidirectional:
        layer_type = jaxrnn.LSTM if lstm else jaxrnn.GRU
        if lstm:
            cell_kwargs["use_cudnn"] = use_cudnn
        layer = jaxrnn.Bidirectional(
            layer_type(
                workload.units,
                return_sequences=True,
                remat=remat,
                **cell_kwargs,
            )
        )

        def forward(params, x, lengths):
            mask = (
                None
                if lengths is None
                else jaxrnn.lengths_to_mask(lengths, x.shape[1])
            )
            return layer(params, x, mask=mask)

        return forward
    cell = jaxrnn_cell(workload, **cell_kwargs)

    def forward(params, x, lengths):
        return jaxrnn.rnn(
            cell,
            params,
            x,
            seq_lengths=lengths,
            remat=remat,
            use_cudnn=use_cudnn if lstm else False,
        )[0]

    return forward


def oracle(name: str, workload: Workload) -> Callable[..., jax.Array]:
    """jaxrnn with the maths a peer claims, over the workload's params."""
    if name == "jaxrnn":
        return jaxrnn_forward(workload)
    if name == "jaxrnn reset_after=False":
        inner = jaxrnn_forward(workload, reset_after=False)
        convert = _per_direction(layouts.reset_before_params)
        return lambda p, x, lengths: inner(convert(p), x, lengths)
    if name == "jaxrnn without b_hn":
        inner = jaxrnn_forward(workload)
        convert = _per_direction(layouts.without_candidate_bias)
        return lambda p, x, lengths: inner(convert(p), x, lengths)
    raise ValueError(f"Unknown oracle {name!r}.")


def jaxrnn_peer(workload: Workload) -> JaxPeer:
    return JaxPeer(
        "jaxrnn", lambda p: p, jaxrnn_forward(workload), group="jaxrnn"
    )


def jaxrnn_scan(workload: Workload) -> JaxPeer:
    """jaxrnn's own scan where "auto" would take cuDNN (an LSTM on a GPU):
    what use_cudnn saves."""
    if workload.cell != "LSTM":
        raise NotApplicable("LSTM only (the GRU always runs the scan)")
    if jax.default_backend() != "gpu":
        raise NotApplicable("the same as jaxrnn off a CUDA GPU")
    return JaxPeer(
        "jaxrnn use_cudnn=False",
        lambda p: p,
        jaxrnn_forward(workload, use_cudnn=False),
        group="jaxrnn",
    )


def jaxrnn_remat(workload: Workload) -> JaxPeer:
    """jaxrnn's training step with remat=True (its forward is jaxrnn's)."""
    return JaxPeer(
        "jaxrnn remat=True",
        lambda p: p,
        jaxrnn_forward(workload, remat=True),
        group="jaxrnn",
        modes=("train",),
        note="training step only",
    )


def jaxrnn_reset_before(workload: Workload) -> JaxPeer:
    """jaxrnn's reset_after=False GRU: Haiku's maths, for a like-for-like
    comparison with hk.GRU."""
    if workload.cell != "GRU":
        raise NotApplicable("GRU only")
    return JaxPeer(
        "jaxrnn GRU reset_after=False",
        _per_direction(layouts.reset_before_params),
        jaxrnn_forward(workload, reset_after=False),
        group="jaxrnn",
        oracle="jaxrnn reset_after=False",
        comparable=False,
        note="reset-before maths (as Haiku)",
    )


def reference(workload: Workload) -> JaxPeer:
    """Plain JAX: hoisted input GEMM plus fused gates in a `lax.scan`."""

    def forward(p, x, lengths):
        return reference_rnn.forward(workload.cell, p, x, lengths)

    return JaxPeer(
        "JAX reference (hand-written)", lambda p: p, forward, group="reference"
    )


def _flax_linen(workload: Workload, optimized: bool) -> JaxPeer:
    try:
        import flax.linen as nn
    except ImportError as error:
        raise Unsupported(f"flax not installed ({error})") from None
    if workload.cell == "LSTM":
        cell_type = nn.OptimizedLSTMCell if optimized else nn.LSTMCell
        leaf = layouts.flax_lstm_leaf
    elif optimized:
        raise NotApplicable("flax.linen has no optimized GRU cell")
    else:
        cell_type, leaf = nn.GRUCell, layouts.flax_gru_leaf
    if workload.bidirectional:
        model = nn.Bidirectional(
            nn.RNN(cell_type(workload.units)),
            nn.RNN(cell_type(workload.units)),
        )
    else:
        model = nn.RNN(cell_type(workload.units))
    x = jnp.zeros((workload.batch, workload.steps, workload.features))
    template = jax.eval_shape(model.init, jax.random.key(0), x)

    def convert(params):
        return layouts.fill(
            template,
            lambda names: leaf(
                layouts.direction(params, names), names[-2], names[-1]
            ),
        )

    def forward(variables, x, lengths):
        return model.apply(variables, x, seq_lengths=lengths)

    return JaxPeer(f"flax.linen {cell_type.__name__}", convert, forward)


def flax_linen(workload: Workload) -> JaxPeer:
    """nn.RNN of nn.LSTMCell (per-gate Dense layers) or nn.GRUCell."""
    return _flax_linen(workload, optimized=False)


def flax_linen_optimized(workload: Workload) -> JaxPeer:
    """nn.RNN of nn.OptimizedLSTMCell (gate kernels concatenated per step)."""
    return _flax_linen(workload, optimized=True)


def _flax_nnx(workload: Workload, optimized: bool) -> JaxPeer:
    try:
        from flax import nnx
    except ImportError as error:
        raise Unsupported(f"flax.nnx not available ({error})") from None
    if workload.cell == "LSTM":
        cell_type = nnx.OptimizedLSTMCell if optimized else nnx.LSTMCell
        leaf, oracle_name, note = layouts.nnx_lstm_leaf, "jaxrnn", ""
    elif optimized:
        raise NotApplicable("flax.nnx has no optimized GRU cell")
    elif not hasattr(nnx, "GRUCell"):
        raise Unsupported("this flax.nnx has no GRUCell")
    else:
        cell_type, leaf = nnx.GRUCell, layouts.nnx_gru_leaf
        oracle_name = "jaxrnn without b_hn"
        note = "no recurrent candidate bias b_hn; checked with it zeroed"
    rngs = nnx.Rngs(0)

    def rnn():
        # rngs=False: a carry RNG stream closed over by jit fails to trace
        # ("Cannot mutate RngCount"); the carry is passed in instead.
        return nnx.RNN(
            cell_type(workload.features, workload.units, rngs=rngs), rngs=False
        )

    model = (
        nnx.Bidirectional(rnn(), rnn()) if workload.bidirectional else rnn()
    )
    graphdef, template, rest = nnx.split(model, nnx.Param, ...)

    def convert(params):
        return layouts.fill(
            template,
            lambda names: leaf(layouts.direction(params, names), names),
        )

    def forward(state, x, lengths):
        h0 = jnp.zeros((x.shape[0], workload.units), x.dtype)
        carry = (h0, h0) if workload.cell == "LSTM" else h0  # LSTM: (c, h)
        if workload.bidirectional:
            carry = (carry, carry)
        return nnx.merge(graphdef, state, rest)(
            x, initial_carry=carry, seq_lengths=lengths
        )

    return JaxPeer(
        f"flax.nnx {cell_type.__name__}",
        convert,
        forward,
        oracle=oracle_name,
        note=note,
    )


def flax_nnx(workload: Workload) -> JaxPeer:
    """nnx.RNN of nnx.LSTMCell or nnx.GRUCell, run through split/merge."""
    return _flax_nnx(workload, optimized=False)


def flax_nnx_optimized(workload: Workload) -> JaxPeer:
    """nnx.RNN of nnx.OptimizedLSTMCell (fused dense_i, dense_h)."""
    return _flax_nnx(workload, optimized=True)


def equinox(workload: Workload) -> JaxPeer:
    """eqx.nn.LSTMCell / GRUCell over one sequence in `lax.scan`, vmapped
    over the batch (Equinox's documented pattern)."""
    try:
        import equinox as eqx
    except ImportError as error:
        raise Unsupported(f"equinox not installed ({error})") from None
    if workload.masked or workload.bidirectional:
        raise Unsupported("Equinox has no mask or bidirectional RNN API")
    lstm = workload.cell == "LSTM"
    cell_type = eqx.nn.LSTMCell if lstm else eqx.nn.GRUCell
    template = cell_type(
        workload.features, workload.units, key=jax.random.key(0)
    )
    to_eqx = layouts.equinox_lstm if lstm else layouts.equinox_gru

    def forward(cell, x, lengths):
        del lengths

        def sequence(xs):  # (T, D) -> (T, H)
            h0 = jnp.zeros(workload.units, xs.dtype)

            def step(state, x_t):
                state = cell(x_t, state)
                return state, state[0] if lstm else state

            return lax.scan(step, (h0, h0) if lstm else h0, xs)[1]

        return jax.vmap(sequence)(x)

    return JaxPeer(
        f"equinox {cell_type.__name__}", lambda p: to_eqx(p, template), forward
    )


def haiku(workload: Workload) -> JaxPeer:
    """hk.dynamic_unroll of hk.LSTM or hk.GRU (reset-before maths)."""
    try:
        import haiku as hk
    except ImportError as error:
        raise Unsupported(f"dm-haiku not installed ({error})") from None
    if workload.masked or workload.bidirectional:
        raise Unsupported("Haiku has no mask or bidirectional unroll")
    lstm = workload.cell == "LSTM"

    def net(x):
        core = hk.LSTM(workload.units) if lstm else hk.GRU(workload.units)
        return hk.dynamic_unroll(
            core, x, core.initial_state(x.shape[0]), time_major=False
        )[0]

    model = hk.without_apply_rng(hk.transform(net))
    x = jnp.zeros((workload.batch, workload.steps, workload.features))
    template = jax.eval_shape(model.init, jax.random.key(0), x)
    if lstm:
        to_haiku, oracle_name, note = layouts.haiku_lstm, "jaxrnn", ""
    else:

        def to_haiku(p):
            return layouts.haiku_gru(layouts.reset_before_params(p))

        oracle_name = "jaxrnn reset_after=False"
        note = "reset-before GRU; checked against jaxrnn reset_after=False"

    def convert(params):
        converted = to_haiku(params)
        return layouts.fill(template, lambda names: converted[names[-1]])

    def forward(params, x, lengths):
        del lengths
        return model.apply(params, x)

    return JaxPeer(
        f"haiku {'LSTM' if lstm else 'GRU'}",
        convert,
        forward,
        oracle=oracle_name,
        comparable=lstm,
        note=note,
    )


def keras_peer(workload: Workload) -> JaxPeer:
    """keras.layers.LSTM / GRU (or Bidirectional of one), JAX backend,
    ``stateless_call`` under jit; a boolean mask for variable lengths."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as error:
        raise Unsupported(f"keras not installed ({error})") from None
    if keras.backend.backend() != "jax":
        raise Unsupported(
            f"Keras backend is {keras.backend.backend()}, "
            "not jax (set KERAS_BACKEND=jax)"
        )
    layer_type = (
        keras.layers.LSTM if workload.cell == "LSTM" else keras.layers.GRU
    )
    layer = layer_type(workload.units, return_sequences=True)
    if workload.bidirectional:
        layer = keras.layers.Bidirectional(layer)
    layer.build((workload.batch, workload.steps, workload.features))
    paths = [v.path.split("/") for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def convert(params):
        return [layouts.direction(params, names)[names[-1]] for names in paths]

    def forward(variables, x, lengths):
        mask = (
            None
            if lengths is None
            else jnp.arange(x.shape[1])[None, :] < lengths[:, None]
        )
        return layer.stateless_call(variables, non_trainable, x, mask=mask)[0]

    # On a GPU, Keras' JAX backend runs an unmasked LSTM through cuDNN
    # (jax.experimental.rnn); masks and GRUs take its scan.
    cudnn = (
        jax.default_backend() == "gpu"
        and workload.cell == "LSTM"
        and not workload.masked
    )
    return JaxPeer(
        f"keras {type(layer).__name__}",
        convert,
        forward,
        note="cuDNN path" if cudnn else "",
    )


def jax_cudnn(workload: Workload) -> JaxPeer:
    """`jax.experimental.rnn.lstm`: cuDNN's fused LSTM, GPU only."""
    if workload.cell != "LSTM":
        raise NotApplicable("LSTM only (jax.experimental.rnn has no GRU)")
    if jax.default_backend() != "gpu":
        raise Unsupported(
            "jax.experimental.rnn lowers to cuDNN only: needs a CUDA GPU"
        )
    from jax.experimental import rnn as jax_rnn

    directions = 2 if workload.bidirectional else 1

    def forward(weights, x, lengths):
        batch, steps = x.shape[:2]
        lengths = (
            jnp.full((batch,), steps, jnp.int32)
            if lengths is None
            else lengths.astype(jnp.int32)
        )
        h0 = jnp.zeros((directions, batch, workload.units), x.dtype)
        ys, _, _ = jax_rnn.lstm(
            x,
            h0,
            h0,
            weights,
            lengths,
            input_size=workload.features,
            hidden_size=workload.units,
            num_layers=1,
            dropout=0.0,
            bidirectional=workload.bidirectional,
        )
        return ys

    return JaxPeer(
        "jax.experimental.rnn LSTM (cuDNN)",
        layouts.cudnn_lstm_weights,
        forward,
    )


def torch_peer(workload: Workload) -> TorchPeer:
    """torch.nn.LSTM / GRU, batch_first, default threads, on the CPU (or
    the GPU when JAX runs on one: harness.torch_device); pack_padded_sequence
    for variable lengths."""
    try:
        import torch
    except ImportError as error:
        raise Unsupported(f"torch not installed ({error})") from None
    from torch.nn.utils import rnn as torch_rnn

    module_type = torch.nn.LSTM if workload.cell == "LSTM" else torch.nn.GRU
    module = module_type(
        workload.features,
        workload.units,
        batch_first=True,
        bidirectional=workload.bidirectional,
    )

    def convert(params):
        if "forward" in params:
            return {
                **layouts.torch_state(params["forward"], workload.cell),
                **layouts.torch_state(
                    params["backward"], workload.cell, "_reverse"
                ),
            }
        return layouts.torch_state(params, workload.cell)

    def forward(module, x, lengths):
        if lengths is None:
            return module(x)[0]
        packed = torch_rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        return torch_rnn.pad_packed_sequence(
            module(packed)[0], batch_first=True, total_length=x.shape[1]
        )[0]

    return TorchPeer(f"torch {module_type.__name__}", convert, module, forward)


PEERS: dict[str, Callable[[Workload], JaxPeer | TorchPeer]] = {
    "jaxrnn": jaxrnn_peer,
    "jaxrnn-scan": jaxrnn_scan,
    "jaxrnn-remat": jaxrnn_remat,
    "jaxrnn-reset-before": jaxrnn_reset_before,
    "reference": reference,
    "flax-linen": flax_linen,
    "flax-linen-optimized": flax_linen_optimized,
    "flax-nnx": flax_nnx,
    "flax-nnx-optimized": flax_nnx_optimized,
    "equinox": equinox,
    "haiku": haiku,
    "keras": keras_peer,
    "jax-cudnn": jax_cudnn,
    "torch": torch_peer,
}
