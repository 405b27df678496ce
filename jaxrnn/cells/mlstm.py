"""The mLSTM, xLSTM's matrix-memory LSTM (Beck et al., 2024, "xLSTM:
Extended Long Short-Term Memory", Section 2.3), as the ``xlstm`` package's
``mLSTMCell`` computes it.

Per head, a matrix memory ``C`` (DH, DH) and a normaliser ``n`` (DH,) take
the covariance update ``C_t = f_t C_{t-1} + i_t k_t v_t^T``, ``n_t = f_t
n_{t-1} + i_t k_t`` (k scaled by 1/sqrt(DH)) with an exponential input gate
``i = exp(i~)`` and a sigmoid forget gate, and the step reads ``h_t = q_t C_t
/ max(|q_t . n_t|, 1)``. The stabiliser ``m`` (the log of the scale the
stored C and n are divided by) keeps the exponentials finite; it is part of
the carry, so a stream continued from a final carry is the same run.

Two forms compute it: the recurrent step, for streaming and generation, and
with ``rnn(..., parallel=True)`` the chunkwise form, quadratic within a
chunk of `chunk_size` steps and recurrent across chunks, equal to the step
by step run (the same stabiliser at every step, so the same numbers up to
rounding).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxrnn._validation import (
    batch_shape_of,
    check_dtype_fields,
    check_heads,
    check_params,
    check_positive_int,
    check_prng_key,
)
from jaxrnn.cells._base import wider_float
from jaxrnn.cells._step import REQUIRED, projected_call

# xlstm's constants: the denominator's epsilon and the output norm's.
EPS = 1e-6
NORM_EPS = 1e-5
# A masked step's input-gate log: exp of it is 0, and it stays finite, so
# no inf - inf can reach a gradient.
_NO_INPUT = -1e30


@dataclasses.dataclass(frozen=True)
class MLSTMCell:
    """One mLSTM step (xlstm's ``mLSTMCell`` with its q, k, v projections).

    ``q, k, v = x @ q_kernel, x @ k_kernel, x @ v_kernel`` (H = num_heads *
    DH each); the gates read ``[q, k, v]`` as xlstm's do: ``i~ = [q, k, v]
    @ igate_kernel + igate_bias`` and ``f~`` alike, one per head; the output
    is each head's h normalised (a layer norm over DH, times
    ``outnorm_scale``).

    Args:
      units: H, the output size, a multiple of `num_heads`.
      num_heads: NH heads of size DH = H / NH, each with its own memory.
      chunk_size: steps per chunk of the chunkwise form
        (``rnn(..., parallel=True)``).
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``q_kernel``, ``k_kernel``, ``v_kernel`` (D, H);
    ``igate_kernel``, ``fgate_kernel`` (3H, NH); ``igate_bias``,
    ``fgate_bias`` (NH,); ``outnorm_scale`` (H,). xlstm's initialisation:
    zero gate kernels, the forget bias spaced from 3 to 6 across heads, the
    input bias normal with std 0.1, the projections normal with std
    sqrt(2 / (5 D)).

    The carry is ``(C, n, m)``: (..., NH, DH, DH), (..., NH, DH), (..., NH).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import rnn
      >>> cell = MLSTMCell(8, num_heads=2, chunk_size=4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> ys, (C, n, m) = rnn(cell, params, jnp.ones((2, 10, 3)),
      ...                     parallel=True)
      >>> ys.shape, C.shape
      ((2, 10, 8), (2, 2, 4, 4))
    """

    units: int
    num_heads: int = 1
    chunk_size: int = 64
    dtype: Any = None
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_heads(self.units, self.num_heads)
        check_positive_int("chunk_size", self.chunk_size)
        check_dtype_fields(self, ("dtype", "param_dtype"))

    @property
    def head_size(self) -> int:
        """DH, each head's size."""
        return self.units // self.num_heads

    @property
    def state_size(self) -> tuple[tuple[int, ...], ...]:
        """The carry's shapes without the batch: C, n and m."""
        nh, dh = self.num_heads, self.head_size
        return ((nh, dh, dh), (nh, dh), (nh,))

    @property
    def output_size(self) -> int:
        """Keras' cell protocol: H."""
        return self.units

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """The shapes `init` creates for inputs of `input_dim` features."""
        h, nh = self.units, self.num_heads
        return {
            "q_kernel": (input_dim, h),
            "k_kernel": (input_dim, h),
            "v_kernel": (input_dim, h),
            "igate_kernel": (3 * h, nh),
            "igate_bias": (nh,),
            "fgate_kernel": (3 * h, nh),
            "fgate_bias": (nh,),
            "outnorm_scale": (h,),
        }

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """xlstm's initialisation (see the class docstring)."""
        check_prng_key("key", key)
        check_positive_int("input_dim", input_dim)
        shapes = self.param_shapes(input_dim)
        keys = jax.random.split(key, 4)
        projection = jax.nn.initializers.normal(math.sqrt(2 / (5 * input_dim)))
        params = {
            name: projection(k, shapes[name])
            for name, k in zip(("q_kernel", "k_kernel", "v_kernel"), keys)
        }
        params.update(
            igate_kernel=jnp.zeros(shapes["igate_kernel"]),
            igate_bias=0.1 * jax.random.normal(keys[3], shapes["igate_bias"]),
            fgate_kernel=jnp.zeros(shapes["fgate_kernel"]),
            fgate_bias=jnp.linspace(3.0, 6.0, self.num_heads),
            outnorm_scale=jnp.ones(shapes["outnorm_scale"]),
        )
        return {k: v.astype(self.param_dtype) for k, v in params.items()}

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = None
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(C, n, m)``, zeros; float32 unless the cell's dtype says
        otherwise."""
        if dtype is None:
            dtype = jnp.float32 if self.dtype is None else self.dtype
        batch = batch_shape_of(batch_shape)
        return tuple(
            jnp.zeros((*batch, *shape), dtype) for shape in self.state_size
        )  # pyright: ignore[reportReturnType]

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises if `params` lacks an array or has one of the wrong shape."""
        check_params("MLSTMCell", params, self.param_shapes(input_dim))

    def _dtype(self, params, xs) -> Any:
        if self.dtype is not None:
            return jnp.dtype(self.dtype)
        return wider_float(xs.dtype, params["q_kernel"].dtype)

    # The projected step (jaxrnn.protocols.ProjectedCell): q, k, v and the
    # gates' pre-activations read only the input.
    def project_inputs(
        self, params: dict[str, jax.Array], xs: jax.Array, dropout: None = None
    ) -> jax.Array:
        """(..., D) -> (..., 3H + 2NH): ``[q, k / sqrt(DH), v, i~, log f]``."""
        del dropout  # always None: no dropout
        dtype = self._dtype(params, xs)
        xs = xs.astype(dtype)
        q, k, v = (
            xs @ params[name].astype(dtype)
            for name in ("q_kernel", "k_kernel", "v_kernel")
        )
        qkv = jnp.concatenate([q, k, v], -1)
        igate = qkv @ params["igate_kernel"].astype(dtype) + params[
            "igate_bias"
        ].astype(dtype)
        fgate = qkv @ params["fgate_kernel"].astype(dtype) + params[
            "fgate_bias"
        ].astype(dtype)
        k = k / jnp.sqrt(jnp.asarray(self.head_size, dtype))
        return jnp.concatenate([q, k, v, igate, jax.nn.log_sigmoid(fgate)], -1)

    def _split(self, projected):
        h, nh, dh = self.units, self.num_heads, self.head_size
        lead = projected.shape[:-1]
        q, k, v = (
            projected[..., i * h : (i + 1) * h].reshape(*lead, nh, dh)
            for i in range(3)
        )
        return (
            q,
            k,
            v,
            projected[..., 3 * h : 3 * h + nh],
            projected[..., 3 * h + nh :],
        )

    def _norm(self, params, h):
        """Each head's (..., NH, DH) layer-normed, scaled, flattened."""
        mean = jnp.mean(h, -1, keepdims=True)
        var = jnp.mean(jnp.square(h - mean), -1, keepdims=True)
        normed = (h - mean) * lax.rsqrt(var + NORM_EPS)
        normed = normed.reshape(*h.shape[:-2], self.units)
        return normed * params["outnorm_scale"].astype(h.dtype)

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: tuple[jax.Array, jax.Array, jax.Array],
        projected: jax.Array,
        dropout: None = None,
    ) -> tuple[tuple[jax.Array, jax.Array, jax.Array], jax.Array]:
        """The recurrent form: one step from ``project_inputs``' output.

        Returns:
          ((C', n', m'), y) with y (..., H); the carry keeps its dtype.
        """
        del dropout
        dtype = projected.dtype
        q, k, v, igate, log_f = self._split(projected)
        c, n, m = (leaf.astype(dtype) for leaf in carry)
        new_m = jnp.maximum(log_f + m, igate)
        f = jnp.exp(log_f + m - new_m)[..., None]
        i = jnp.exp(igate - new_m)[..., None]
        new_c = f[..., None] * c + i[..., None] * (
            k[..., :, None] * v[..., None, :]
        )
        new_n = f * n + i * k
        numerator = jnp.einsum("...d,...de->...e", q, new_c)
        denominator = jnp.maximum(
            jnp.abs(jnp.sum(q * new_n, -1)), jnp.exp(-new_m)
        )[..., None]
        y = self._norm(params, numerator / (denominator + EPS))
        new = (new_c, new_n, new_m)
        return tuple(a.astype(old.dtype) for a, old in zip(new, carry)), y  # pyright: ignore[reportReturnType]

    def __call__(
        self,
        params: dict[str, jax.Array] = REQUIRED,
        carry: tuple[jax.Array, jax.Array, jax.Array] = REQUIRED,
        x: ArrayLike = REQUIRED,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[tuple[jax.Array, jax.Array, jax.Array], jax.Array]:
        """Advances one time step.

        Args:
          params: the dict from `init`.
          carry: ``(C, n, m)``, (..., NH, DH, DH), (..., NH, DH), (..., NH).
          x: (..., D) input; leading axes are batch axes, possibly none.
          key: unused (no dropout); part of the cell protocol.
          training: unused (the same computation either way).

        Returns:
          ((C', n', m'), y) with y (..., H).
        """
        del key, training  # no dropout
        return projected_call(self, params, carry, x)

    # The whole-sequence form of `rnn(..., parallel=True)` (jaxrnn/_parallel.py).
    def parallel_run(
        self,
        params: dict[str, jax.Array],
        xs: jax.Array,
        carry: tuple[jax.Array, jax.Array, jax.Array],
        step_mask: jax.Array | None,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
        """The chunkwise form over time-major xs (T, B, D).

        Within a chunk of L steps the outputs come from an (L, L) decay
        matrix (the parallel form); across chunks ``(C, n, m)`` are carried
        as the recurrent form carries them. A masked step (`step_mask`
        False) forgets nothing and stores nothing.

        Returns:
          (ys (T, B, H), the final carry), the ys of masked steps
          unspecified (`rnn` replaces them).
        """
        del key, training
        steps = xs.shape[0]
        length = min(self.chunk_size, steps)
        chunks = -(-steps // length)
        projected = self.project_inputs(params, xs)
        q, k, v, igate, log_f = self._split(projected)
        if step_mask is not None:
            keep = step_mask[..., None]
            igate = jnp.where(keep, igate, _NO_INPUT)
            log_f = jnp.where(keep, log_f, 0.0)
        pad = chunks * length - steps
        if pad:
            # Padded steps, like masked ones, change nothing.
            q, k, v, log_f = (
                jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
                for a in (q, k, v, log_f)
            )
            igate = jnp.pad(
                igate, [(0, pad), (0, 0), (0, 0)], constant_values=_NO_INPUT
            )

        def chunked(a):
            return a.reshape(chunks, length, *a.shape[1:])

        dtype = projected.dtype
        init = tuple(leaf.astype(dtype) for leaf in carry)
        final, hs = lax.scan(
            self._chunk,
            init,
            tuple(chunked(a) for a in (q, k, v, igate, log_f)),
        )
        hs = hs.reshape(chunks * length, *hs.shape[2:])[:steps]
        final = tuple(a.astype(old.dtype) for a, old in zip(final, carry))
        return self._norm(params, hs), final  # pyright: ignore[reportReturnType]

    def _chunk(self, carry, chunk):
        """One chunk: (L, B, NH, ...) inputs, the carry in and out."""
        c, n, m = carry  # (B, NH, DH, DH), (B, NH, DH), (B, NH)
        q, k, v, igate, log_f = chunk
        length = q.shape[0]
        cumulative = jnp.cumsum(log_f, 0)  # F_t, (L, B, NH)
        # log of step j's weight in step t's memory: F_t - F_j + i~_j.
        log_weights = (
            cumulative[:, None] - cumulative[None, :] + igate[None, :]
        )  # (t, j, B, NH)
        causal = jnp.tril(jnp.ones((length, length), bool))[..., None, None]
        log_weights = jnp.where(causal, log_weights, -jnp.inf)
        carried = cumulative + m  # log of the carried memory's weight
        new_m = jnp.maximum(carried, jnp.max(log_weights, 1))  # (L, B, NH)
        weights = jnp.exp(log_weights - new_m[:, None])
        scores = jnp.einsum("tbhd,jbhd->tjbh", q, k) * weights
        scale = jnp.exp(carried - new_m)[..., None]  # (L, B, NH, 1)
        numerator = scale * jnp.einsum("tbhd,bhde->tbhe", q, c) + jnp.einsum(
            "tjbh,jbhe->tbhe", scores, v
        )
        denominator = scale[..., 0] * jnp.einsum(
            "tbhd,bhd->tbh", q, n
        ) + jnp.sum(scores, 1)
        denominator = jnp.maximum(jnp.abs(denominator), jnp.exp(-new_m))
        hs = numerator / (denominator[..., None] + EPS)
        # The carry after the chunk: the recurrent form's, unrolled.
        last_m = new_m[-1]
        decay = jnp.exp(
            cumulative[-1] - cumulative + igate - last_m
        )  # (L, B, NH)
        keep = jnp.exp(carried[-1] - last_m)  # (B, NH)
        new_c = keep[..., None, None] * c + jnp.einsum(
            "jbh,jbhd,jbhe->bhde", decay, k, v
        )
        new_n = keep[..., None] * n + jnp.einsum("jbh,jbhd->bhd", decay, k)
        return (new_c, new_n, last_m), hs
