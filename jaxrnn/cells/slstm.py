"""The sLSTM, xLSTM's scalar-memory LSTM (Beck et al., 2024, "xLSTM:
Extended Long Short-Term Memory", Section 2.2), as the ``xlstm`` package's
``sLSTMCell`` computes it.

An LSTM with an exponential input gate ``i = exp(i~)`` and a sigmoid forget
gate, a normaliser state ``n_t = f_t n_{t-1} + i_t`` beside the cell state
``c_t = f_t c_{t-1} + i_t tanh(z~)``, and the output ``h_t = o_t c_t /
n_t``. The stabiliser ``m_t = max(log f_t + m_{t-1}, i~_t)`` (the log of
the scale c and n are stored divided by) keeps the exponentials finite;
``h`` does not depend on it. The recurrent weights are block-diagonal: each
of the NH heads mixes only its own DH = H / NH units.

The recurrence is not linear in its carry (h feeds the gates), so it runs
step by step; the step splits into the hoisted input projection, one
recurrent matmul and elementwise gates, so `rnn` takes the split-step path
(one GEMM per chunk of steps forward, a hand-written backward pass).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
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

Carry = tuple[jax.Array, jax.Array, jax.Array, jax.Array]


def powerlaw_forget_bias(head_size: int) -> jax.Array:
    """xlstm's ``powerlaw_blockdependent`` forget-gate bias of one head
    (the first block of a stack): from -5 ... up to 7, on a 0.3 power law
    over the head's DH units (DH = 1 gets 5)."""
    ramp = jnp.arange(head_size) / max(head_size - 1, 1)
    return -(-5.0 + 12.0 * ramp**0.3)


@dataclasses.dataclass(frozen=True)
class SLSTMCell:
    """One sLSTM step (xlstm's ``sLSTMCell`` with its input projection).

    The gates' pre-activations, in xlstm's order ``[i, f, z, o]``, are
    ``x @ kernel + h @ blockdiag(recurrent_kernel) + bias``; then ``m' =
    max(log sigmoid(f~) + m, i~)`` (``i~`` where ``n = 0``, an empty
    memory), ``i = exp(i~ - m')``, ``f = exp(log sigmoid(f~) + m - m')``
    (both at most 1), ``c' = f c + i tanh(z~)``, ``n' = f n + i`` and ``h'
    = sigmoid(o~) c' / n'``.

    Args:
      units: H, the output size, a multiple of `num_heads`.
      num_heads: NH heads of DH = H / NH units; the recurrent weights mix
        units of one head only.
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``kernel`` (D, 4H), ``recurrent_kernel`` (NH, DH, 4 DH) (head
    k's ``h[k] @ recurrent_kernel[k]`` gives its ``[i, f, z, o]``, DH
    each), ``bias`` (4H,), all gate-major ``[i, f, z, o]``. xlstm's
    initialisation: the kernel normal with std sqrt(2 / (5 D)), zero
    recurrent weights, zero biases but the forget gate's power law
    (`powerlaw_forget_bias`, the same in every head).

    The carry is ``(h, c, n, m)``, each (..., H).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import rnn
      >>> cell = SLSTMCell(8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> ys, (h, c, n, m) = rnn(cell, params, jnp.ones((2, 10, 3)))
      >>> ys.shape, n.shape
      ((2, 10, 8), (2, 8))
    """

    units: int
    num_heads: int = 1
    dtype: Any = None
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_heads(self.units, self.num_heads)
        check_dtype_fields(self, ("dtype", "param_dtype"))

    @property
    def head_size(self) -> int:
        """DH, each head's size."""
        return self.units // self.num_heads

    @property
    def state_size(self) -> tuple[int, int, int, int]:
        """The carry's sizes: h, c, n and m, H each."""
        return (self.units, self.units, self.units, self.units)

    @property
    def output_size(self) -> int:
        """Keras' cell protocol: H."""
        return self.units

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """The shapes `init` creates for inputs of `input_dim` features."""
        h, nh, dh = self.units, self.num_heads, self.head_size
        return {
            "kernel": (input_dim, 4 * h),
            "recurrent_kernel": (nh, dh, 4 * dh),
            "bias": (4 * h,),
        }

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """xlstm's initialisation (see the class docstring)."""
        check_prng_key("key", key)
        check_positive_int("input_dim", input_dim)
        shapes = self.param_shapes(input_dim)
        kernel = jax.nn.initializers.normal(math.sqrt(2 / (5 * input_dim)))
        forget = jnp.tile(powerlaw_forget_bias(self.head_size), self.num_heads)
        zeros = jnp.zeros((self.units,))
        params = {
            "kernel": kernel(key, shapes["kernel"]),
            "recurrent_kernel": jnp.zeros(shapes["recurrent_kernel"]),
            "bias": jnp.concatenate([zeros, forget, zeros, zeros]),
        }
        return {k: v.astype(self.param_dtype) for k, v in params.items()}

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = None
    ) -> Carry:
        """``(h, c, n, m)``, zeros; float32 unless the cell's dtype says
        otherwise."""
        if dtype is None:
            dtype = jnp.float32 if self.dtype is None else self.dtype
        batch = batch_shape_of(batch_shape)
        return tuple(jnp.zeros((*batch, self.units), dtype) for _ in range(4))  # pyright: ignore[reportReturnType]

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises if `params` lacks an array or has one of the wrong shape."""
        check_params("SLSTMCell", params, self.param_shapes(input_dim))

    def _dtype(self, params, xs) -> Any:
        if self.dtype is not None:
            return jnp.dtype(self.dtype)
        return wider_float(xs.dtype, params["kernel"].dtype)

    # The projected step (jaxrnn.protocols.ProjectedCell).
    def project_inputs(
        self, params: dict[str, jax.Array], xs: jax.Array, dropout: None = None
    ) -> jax.Array:
        """(..., D) -> (..., 4H): ``x @ kernel + bias``."""
        del dropout  # always None: no dropout
        dtype = self._dtype(params, xs)
        return xs.astype(dtype) @ params["kernel"].astype(dtype) + params[
            "bias"
        ].astype(dtype)

    # The split step (jaxrnn.protocols.SplitStepCell): `rnn` differentiates
    # a sequence by its hand-written backward pass (jaxrnn/_fused.py).
    def recurrent_input(
        self, carry: Carry, dropout: None, dtype: Any
    ) -> jax.Array:
        """The carry's h in `dtype`, (..., H)."""
        del dropout
        return carry[0].astype(dtype)

    def project_recurrent(
        self, params: dict[str, jax.Array], h_in: jax.Array
    ) -> jax.Array:
        """(..., H) -> (..., 4H), gate-major: each head's h times its own
        (DH, 4 DH) block."""
        nh, dh = self.num_heads, self.head_size
        lead = h_in.shape[:-1]
        heads = h_in.reshape(*lead, nh, dh)
        kernel = params["recurrent_kernel"].astype(h_in.dtype)
        gates = jnp.einsum("...kd,kde->...ke", heads, kernel)
        gates = gates.reshape(*lead, nh, 4, dh)
        return jnp.swapaxes(gates, -3, -2).reshape(*lead, 4 * self.units)

    def apply_gates(
        self, carry: Carry, projected: jax.Array, recurrent: jax.Array
    ) -> tuple[Carry, jax.Array]:
        """The elementwise rest of a step.

        Args:
          carry: ``(h, c, n, m)``, each (..., H).
          projected: ``x @ kernel + bias``, (..., 4H).
          recurrent: `project_recurrent` of h, (..., 4H).

        Returns:
          ((h', c', n', m'), h'); the carry keeps its dtype.
        """
        dtype = projected.dtype
        _, c, n, m = (leaf.astype(dtype) for leaf in carry)
        i_raw, f_raw, z_raw, o_raw = jnp.split(projected + recurrent, 4, -1)
        log_f_plus_m = m + jax.nn.log_sigmoid(f_raw)
        # An empty memory (n = 0: the start of a sequence) takes the input
        # gate's scale, whatever m held.
        new_m = jnp.where(n == 0, i_raw, jnp.maximum(i_raw, log_f_plus_m))
        one = jnp.ones((), dtype)
        i = jnp.minimum(jnp.exp(i_raw - new_m), one)
        f = jnp.minimum(jnp.exp(log_f_plus_m - new_m), one)
        new_c = f * c + i * jnp.tanh(z_raw)
        new_n = f * n + i
        new_h = jax.nn.sigmoid(o_raw) * new_c / new_n
        new = (new_h, new_c, new_n, new_m)
        return tuple(a.astype(old.dtype) for a, old in zip(new, carry)), new_h  # pyright: ignore[reportReturnType]

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: Carry,
        projected: jax.Array,
        dropout: None = None,
    ) -> tuple[Carry, jax.Array]:
        """One step from ``project_inputs``' output: ``apply_gates(carry,
        projected, project_recurrent(params, h))``."""
        h_in = self.recurrent_input(carry, dropout, projected.dtype)
        return self.apply_gates(
            carry, projected, self.project_recurrent(params, h_in)
        )

    def __call__(
        self,
        params: dict[str, jax.Array] = REQUIRED,
        carry: Carry = REQUIRED,
        x: ArrayLike = REQUIRED,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[Carry, jax.Array]:
        """Advances one time step.

        Args:
          params: the dict from `init`.
          carry: ``(h, c, n, m)``, each (..., H).
          x: (..., D) input; leading axes are batch axes, possibly none.
          key: unused (no dropout); part of the cell protocol.
          training: unused (the same computation either way).

        Returns:
          ((h', c', n', m'), h') with h' (..., H).
        """
        del key, training  # no dropout
        return projected_call(self, params, carry, x)
