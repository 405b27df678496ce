"""minGRU and minLSTM (Feng et al., 2024, "Were RNNs All We Needed?").

Their gates read the input only, never the hidden state, so one step is the
diagonal linear recurrence ``h' = a(x) * h + b(x)`` and a whole sequence runs
at once with ``rnn(..., parallel=True)`` (`jax.lax.associative_scan`, see
``jaxrnn/_parallel.py``). Step by step, they are ordinary cells for streaming
and generation.

``log_space=True`` is the paper's numerically stable variant (its Section 3
and Appendix B listings): the candidate goes through the positive activation
`g`, and the parallel run scans ``(log a, log b)`` pairs, combining them with
``logaddexp`` instead of products and sums.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn import initializers
from jaxrnn._validation import (
    batch_shape_of,
    check_bool,
    check_params,
    check_positive_int,
    check_prng_key,
)
from jaxrnn.cells._base import wider_float
from jaxrnn.cells._step import REQUIRED, projected_call
from jaxrnn.initializers import InitializerLike


def g(x: jax.Array) -> jax.Array:
    """The paper's positive candidate activation: ``x + 0.5`` for x >= 0,
    ``sigmoid(x)`` below (continuous at 0, always > 0).

    Example:
      >>> import jax.numpy as jnp
      >>> g(jnp.array([-2.0, 0.0, 1.5]))
      Array([0.11920292, 0.5       , 2.        ], dtype=float32)
    """
    return jnp.where(x >= 0, jax.nn.relu(x) + 0.5, jax.nn.sigmoid(x))


def log_g(x: jax.Array) -> jax.Array:
    """``log(g(x))`` without a log of a tiny number: ``log(x + 0.5)`` for
    x >= 0, ``-softplus(-x)`` below.

    Example:
      >>> import jax.numpy as jnp
      >>> bool(jnp.allclose(log_g(jnp.array([-30.0, 0.0, 2.0])),
      ...                   jnp.log(g(jnp.array([-30.0, 0.0, 2.0])))))
      True
    """
    # relu keeps the unused branch finite, so its gradient through where is 0.
    return jnp.where(
        x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x)
    )


@dataclasses.dataclass(frozen=True)
class _MinCell:
    """What minGRU and minLSTM share: one input projection, no recurrent
    weights. A subclass sets ``gates`` and defines ``_coefficients`` and
    ``_log_coefficients`` on the projected input."""

    units: int
    use_bias: bool = True
    kernel_initializer: InitializerLike = "glorot_uniform"
    bias_initializer: InitializerLike = "zeros"
    log_space: bool = False
    param_dtype: Any = "float32"

    gates = 1

    def __post_init__(self):
        check_positive_int("units", self.units)
        check_bool("use_bias", self.use_bias)
        check_bool("log_space", self.log_space)
        initializers.get(self.kernel_initializer)
        initializers.get(self.bias_initializer)
        if not jnp.issubdtype(self.param_dtype, jnp.floating):
            raise TypeError(
                "`param_dtype` must be a floating dtype, got "
                f"{self.param_dtype!r}."
            )

    @property
    def state_size(self) -> int:
        """Keras' cell protocol: the size of the carry, H."""
        return self.units

    @property
    def output_size(self) -> int:
        """Keras' cell protocol: the size of the output, H."""
        return self.units

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """kernel `(D, G*H)` and, with `use_bias`, bias `(G*H,)`."""
        shapes: dict[str, tuple[int, ...]] = {
            "kernel": (input_dim, self.gates * self.units)
        }
        if self.use_bias:
            shapes["bias"] = (self.gates * self.units,)
        return shapes

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """Returns `{"kernel": (D, G*H), "bias": (G*H,)}` drawn with the cell's
        initializers (`jax.nn.initializers` by Keras name, or callables)."""
        check_prng_key("key", key)
        check_positive_int("input_dim", input_dim)
        k_kernel, k_bias = jax.random.split(key)
        width = self.gates * self.units
        params = {
            "kernel": initializers.initialize(
                self.kernel_initializer,
                k_kernel,
                (input_dim, width),
                self.param_dtype,
            )
        }
        if self.use_bias:
            params["bias"] = initializers.initialize(
                self.bias_initializer, k_bias, (width,), self.param_dtype
            )
        return params

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = jnp.float32
    ) -> jax.Array:
        """Zeros of shape `(*batch_shape, H)` (an int B means (B,))."""
        return jnp.zeros((*batch_shape_of(batch_shape), self.units), dtype)

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises if `params` lacks an array or has one of the wrong shape."""
        check_params(type(self).__name__, params, self.param_shapes(input_dim))

    # The projected step (jaxrnn.protocols.ProjectedCell): the whole input
    # dependence is one GEMM, the step is elementwise. No dropout, so no
    # `dropout_masks`.
    def project_inputs(
        self, params: dict[str, jax.Array], xs: jax.Array, dropout: None = None
    ) -> jax.Array:
        """(..., D) -> `(..., G*H)`: ``xs @ kernel + bias``, any leading
        axes."""
        del dropout  # always None: no dropout
        dtype = wider_float(xs.dtype, params["kernel"].dtype)
        projected = xs.astype(dtype) @ params["kernel"].astype(dtype)
        if "bias" in params:
            projected = projected + params["bias"].astype(dtype)
        return projected

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: jax.Array,
        projected: jax.Array,
        dropout: None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """``h' = a * h + b`` from the projected input `(..., G*H)`.

        Returns:
          (h', h'), both (..., H); the carry keeps its dtype.
        """
        del params, dropout  # the projection holds all the weights; no dropout
        a, b = self._coefficients(projected)
        h = a * carry.astype(a.dtype) + b
        return h.astype(carry.dtype), h

    def __call__(
        self,
        params: dict[str, jax.Array] = REQUIRED,
        carry: jax.Array = REQUIRED,
        x: ArrayLike = REQUIRED,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """Advances one time step.

        Args:
          params: the dict from `init`.
          carry: (..., H) previous hidden state.
          x: (..., D) input; leading axes are batch axes, possibly none.
          key: unused (no dropout); part of the cell protocol.
          training: unused (the same computation either way).

        Returns:
          (new_carry, y), both (..., H).
        """
        del key, training  # no dropout
        return projected_call(self, params, carry, x)

    # The parallel protocol of `rnn(..., parallel=True)` (jaxrnn/_parallel.py).
    def parallel_coefficients(
        self,
        params: dict[str, jax.Array],
        xs: jax.Array,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """(a, b), each (..., H), with ``h_t = a_t * h_{t-1} + b_t``.

        Args:
          params: the dict from `init`.
          xs: (..., D) inputs, any leading axes (``rnn`` passes (T, B, D)).
          key: unused (no dropout).
          training: unused.
        """
        del key, training
        return self._coefficients(self.project_inputs(params, xs))

    def parallel_log_coefficients(
        self,
        params: dict[str, jax.Array],
        xs: jax.Array,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """(log a, log b), each (..., H), for the log-space scan; b > 0 needs
        the positive candidate `g`, so only with ``log_space=True``."""
        del key, training
        if not self.log_space:
            raise ValueError(
                f"{type(self).__name__}(log_space=False) has a "
                "linear candidate that can be negative; its "
                "coefficients have no logarithm. Build the cell "
                "with log_space=True."
            )
        return self._log_coefficients(self.project_inputs(params, xs))

    def _coefficients(
        self, projected: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(a, b) of ``h' = a * h + b`` from the projected input."""
        raise NotImplementedError  # each subclass has its gates

    def _log_coefficients(
        self, projected: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(log a, log b), for the log-space variant."""
        raise NotImplementedError

    def _candidate(self, k_h: jax.Array) -> jax.Array:
        # The paper's plain variant keeps the candidate linear; the log-space
        # one needs it positive (Section 3.1.2 / 3.2.3: g).
        return g(k_h) if self.log_space else k_h


@dataclasses.dataclass(frozen=True)
class MinGRUCell(_MinCell):
    """minGRU: ``z = sigmoid(x W_z + b_z)``, ``h~ = x W_h + b_h``,
    ``h' = (1 - z) * h + z * h~`` (Feng et al., 2024, Section 3.1).

    The gate reads only the input, so `rnn(..., parallel=True)` runs the
    whole sequence with an associative scan (same numbers as step by step).
    With ``log_space=True`` the candidate is ``g(x W_h + b_h)`` (positive)
    and the parallel scan runs on logarithms, the paper's stable variant.

    Args:
      units: hidden size H, a positive int.
      use_bias: whether params hold a ``bias`` (2H,).
      kernel_initializer: for ``kernel`` (D, 2H), gate order (z, h~); a Keras
        initializer name or a callable ``init(key, shape, dtype)``.
      bias_initializer: for ``bias`` (2H,).
      log_space: the paper's log-space variant (candidate `g`, log-space
        parallel scan).
      param_dtype: dtype of the arrays `init` creates.

    The carry is h (..., H); the output is h. There is no dropout: ``key``
    and ``training`` change nothing.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import rnn
      >>> cell = MinGRUCell(4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> h, y = cell(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
      >>> ys, h = rnn(cell, params, jnp.ones((2, 50, 3)), parallel=True)
      >>> ys.shape, params["kernel"].shape
      ((2, 50, 4), (3, 8))
    """

    gates = 2

    def _coefficients(self, projected):
        k_z, k_h = jnp.split(projected, 2, axis=-1)
        # 1 - sigmoid(k) == sigmoid(-k), without the cancellation.
        return jax.nn.sigmoid(-k_z), jax.nn.sigmoid(k_z) * self._candidate(k_h)

    def _log_coefficients(self, projected):
        k_z, k_h = jnp.split(projected, 2, axis=-1)
        # log(1 - z) = -softplus(k), log z = -softplus(-k) (paper, Listing 5).
        return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(k_h)


@dataclasses.dataclass(frozen=True)
class MinLSTMCell(_MinCell):
    """minLSTM: ``f, i = sigmoid(x W_f + b_f), sigmoid(x W_i + b_i)``,
    normalised ``f' = f / (f + i)``, ``i' = i / (f + i)``, then
    ``h' = f' * h + i' * h~`` with ``h~ = x W_h + b_h`` (Feng et al., 2024,
    Section 3.2, the length-independent form). No cell state, no output gate.

    ``f' = sigmoid(-d)`` and ``i' = sigmoid(d)`` with
    ``d = softplus(-k_f) - softplus(-k_i)``: the paper's log-space rewrite,
    used in both variants because it cannot divide 0 by 0.

    Args:
      units: hidden size H, a positive int.
      use_bias: whether params hold a ``bias`` (3H,).
      kernel_initializer: for ``kernel`` (D, 3H), gate order (i, f, h~) as
        Keras' LSTM orders i, f, c.
      bias_initializer: for ``bias`` (3H,).
      log_space: the paper's log-space variant (candidate `g`, log-space
        parallel scan).
      param_dtype: dtype of the arrays `init` creates.

    The carry is h (..., H); the output is h. No dropout.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = MinLSTMCell(4, log_space=True)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> h, y = cell(params, cell.initial_carry(), jnp.ones(3))
      >>> y.shape, params["bias"].shape
      ((4,), (12,))
    """

    gates = 3

    def _forget_input_gap(self, projected):
        k_i, k_f, k_h = jnp.split(projected, 3, axis=-1)
        return jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i), k_h

    def _coefficients(self, projected):
        gap, k_h = self._forget_input_gap(projected)
        return jax.nn.sigmoid(-gap), jax.nn.sigmoid(gap) * self._candidate(k_h)

    def _log_coefficients(self, projected):
        gap, k_h = self._forget_input_gap(projected)
        return -jax.nn.softplus(gap), -jax.nn.softplus(-gap) + log_g(k_h)
