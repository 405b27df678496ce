"""The real-gated linear recurrent unit, RG-LRU (De et al., 2024, "Griffin:
Mixing Gated Linear Recurrences with Local Attention for Efficient Language
Models", Section 2.4; Google DeepMind's ``recurrentgemma``).

``h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)`` with the recurrence
gate ``a_t = a^(c r_t)``: its log ``-c * r_t * softplus(a_param)``, ``c = 8``,
and the gates ``r_t = sigmoid(x_t W_a + b_a)``, ``i_t = sigmoid(x_t W_x +
b_x)`` read only the input (block-diagonal, one block per head). Linear in
the carry, so ``rnn(..., parallel=True)`` runs it as an associative scan.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
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

# recurrentgemma clips the gradient of the normaliser's square root at this
# value, so that a -> 1 (sqrt(1 - a^2) -> 0) cannot produce inf in training.
MAX_SQRT_GRADIENT = 1000.0


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def sqrt_bounded_gradient(x: jax.Array, max_gradient: float) -> jax.Array:
    """``sqrt(x)``, whose derivative is capped at `max_gradient` (it is
    evaluated at ``max(x, 1 / (4 max_gradient^2))``)."""
    del max_gradient
    return jnp.sqrt(x)


def _sqrt_fwd(x, max_gradient):
    del max_gradient
    return jnp.sqrt(x), x


def _sqrt_bwd(max_gradient, x, g):
    floor = jnp.maximum(x, 1.0 / (4.0 * max_gradient**2))
    return (g * 0.5 / jnp.sqrt(floor),)


sqrt_bounded_gradient.defvjp(_sqrt_fwd, _sqrt_bwd)


def _check_positive_real(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not float(value) > 0
    ):
        raise ValueError(f"`{name}` must be a real number > 0, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class RGLRUCell:
    """One RG-LRU step, recurrentgemma's ``RGLRU`` with ``only_real=True``.

    Args:
      units: H, the input and output features (the input is gated
        elementwise, so it has H features too).
      num_heads: the gates' diagonal blocks; divides `units`.
      c: the recurrence gate's exponent (the paper's c = 8).
      min_rad: ``a = sigmoid(-a_param)`` starts with ``a^2`` uniform on
        [min_rad^2, max_rad^2] (recurrentgemma's 0.9).
      max_rad: that range's top, below 1 (recurrentgemma's 0.999).
      w_init_variance_scale: the gates' kernels start normal with variance
        ``w_init_variance_scale / H`` (Flax's fan-in of the block stack).
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``a_param`` (H,); ``input_gate_kernel`` and ``a_gate_kernel``
    (num_heads, H/num_heads, H/num_heads), ``input_gate_bias`` and
    ``a_gate_bias`` (num_heads, H/num_heads): recurrentgemma's ``a_param``,
    ``input_gate.w``/``.b`` and ``a_gate.w``/``.b``
    (`jaxrnn.interop.from_recurrentgemma` converts them).

    The carry is h (..., H), and the output is h.

    Unlike recurrentgemma, which resets the state at a document's first
    position (``segment_pos == 0``: there ``h = i * x``, unnormalised), the
    cell always reads its carry: start documents with a zero carry, or run
    them as separate rows. `jaxrnn.layers.GriffinBlock` restarts as
    recurrentgemma does.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import rnn
      >>> cell = RGLRUCell(8, num_heads=2)
      >>> params = cell.init(jax.random.key(0), 8)
      >>> ys, h = rnn(cell, params, jnp.ones((2, 30, 8)), parallel=True)
      >>> ys.shape, h.shape
      ((2, 30, 8), (2, 8))
    """

    units: int
    num_heads: int = 1
    c: float = 8.0
    min_rad: float = 0.9
    max_rad: float = 0.999
    w_init_variance_scale: float = 1.0
    dtype: Any = None
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_heads(self.units, self.num_heads)
        for name in ("c", "max_rad", "w_init_variance_scale"):
            _check_positive_real(name, getattr(self, name))
        if not 0.0 <= self.min_rad < self.max_rad < 1.0:
            raise ValueError(
                "RGLRUCell needs 0 <= min_rad < max_rad < 1, got "
                f"min_rad={self.min_rad}, max_rad={self.max_rad}."
            )
        check_dtype_fields(self, ("dtype", "param_dtype"))

    @property
    def state_size(self) -> int:
        """Keras' cell protocol: H."""
        return self.units

    @property
    def output_size(self) -> int:
        """Keras' cell protocol: H."""
        return self.units

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """The shapes `init` creates (input_dim must equal `units`)."""
        heads, block = self.num_heads, input_dim // self.num_heads
        return {
            "a_param": (input_dim,),
            "input_gate_kernel": (heads, block, block),
            "input_gate_bias": (heads, block),
            "a_gate_kernel": (heads, block, block),
            "a_gate_bias": (heads, block),
        }

    def _check_input_dim(self, input_dim: int) -> None:
        if input_dim != self.units:
            raise ValueError(
                f"RGLRUCell(units={self.units}) needs inputs with "
                f"{self.units} features (the input is gated elementwise), "
                f"got {input_dim}; project the inputs to `units` features "
                "first (the Griffin block's linear layer does)."
            )

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """recurrentgemma's initialisation: ``a^2`` uniform on
        [min_rad^2, max_rad^2] (``a_param`` its inverse softplus), the gate
        kernels variance-scaled normal (fan-in), biases zero.

        Raises:
          ValueError: `input_dim` is not `units`.
        """
        check_prng_key("key", key)
        check_positive_int("input_dim", input_dim)
        self._check_input_dim(input_dim)
        shapes = self.param_shapes(input_dim)
        k_a, k_input, k_gate = jax.random.split(key, 3)
        uniform = jax.random.uniform(k_a, (input_dim,), jnp.float32)
        log_a = 0.5 * jnp.log(
            uniform * (self.max_rad**2 - self.min_rad**2)
            + self.min_rad**2
            + 1e-8
        )
        kernel_init = jax.nn.initializers.variance_scaling(
            self.w_init_variance_scale, "fan_in", "normal"
        )
        params = {
            # softplus(a_param) = -log a: a_param = log(exp(-log a) - 1).
            "a_param": jnp.log(jnp.expm1(-log_a)),
            "input_gate_kernel": kernel_init(
                k_input, shapes["input_gate_kernel"]
            ),
            "input_gate_bias": jnp.zeros(shapes["input_gate_bias"]),
            "a_gate_kernel": kernel_init(k_gate, shapes["a_gate_kernel"]),
            "a_gate_bias": jnp.zeros(shapes["a_gate_bias"]),
        }
        return {k: v.astype(self.param_dtype) for k, v in params.items()}

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = None
    ) -> jax.Array:
        """Zeros `(*batch_shape, H)`; float32 unless the cell's dtype says
        otherwise."""
        if dtype is None:
            dtype = jnp.float32 if self.dtype is None else self.dtype
        return jnp.zeros((*batch_shape_of(batch_shape), self.units), dtype)

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises if `params` lacks an array or has one of the wrong shape,
        or if `input_dim` is not `units`."""
        self._check_input_dim(input_dim)
        check_params("RGLRUCell", params, self.param_shapes(input_dim))

    def _block_diagonal(self, xs, kernel, bias):
        blocks = xs.reshape(*xs.shape[:-1], self.num_heads, -1)
        out = jnp.einsum("...hi,hij->...hj", blocks, kernel.astype(xs.dtype))
        return (out + bias.astype(xs.dtype)).reshape(xs.shape)

    def parallel_coefficients(
        self,
        params: dict[str, jax.Array],
        xs: jax.Array,
        *,
        key: jax.Array | None = None,
        training: bool = False,
        resets: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """(a, b), each (..., H), with ``h_t = a_t * h_{t-1} + b_t``:
        ``a_t = exp(-c * r_t * softplus(a_param))`` and
        ``b_t = sqrt(1 - a_t^2) * i_t * x_t``.

        `resets`, bool (...) or None, marks where recurrentgemma restarts a
        document (``segment_pos == 0``): there ``a = 0`` and ``b = i * x``,
        unnormalised (`jaxrnn.layers.GriffinBlock` passes them)."""
        del key, training  # no dropout
        dtype = (
            jnp.dtype(self.dtype)
            if self.dtype is not None
            else wider_float(xs.dtype, params["a_param"].dtype)
        )
        xs = xs.astype(dtype)
        input_gate = jax.nn.sigmoid(
            self._block_diagonal(
                xs, params["input_gate_kernel"], params["input_gate_bias"]
            )
        )
        recurrence_gate = jax.nn.sigmoid(
            self._block_diagonal(
                xs, params["a_gate_kernel"], params["a_gate_bias"]
            )
        )
        log_a = (
            -self.c
            * recurrence_gate
            * jax.nn.softplus(params["a_param"].astype(dtype))
        )
        a = jnp.exp(log_a)
        normaliser = jnp.asarray(
            sqrt_bounded_gradient(
                1.0 - jnp.exp(2.0 * log_a), MAX_SQRT_GRADIENT
            )
        )
        if resets is not None:
            restart = resets[..., None]
            a = jnp.where(restart, jnp.zeros((), dtype), a)
            normaliser = jnp.where(restart, jnp.ones((), dtype), normaliser)
        return a, xs * input_gate * normaliser

    # The projected step (jaxrnn.protocols.ProjectedCell): the gates read
    # only the input, so the whole of them is hoisted; the loop is one FMA.
    def project_inputs(
        self, params: dict[str, jax.Array], xs: jax.Array, dropout: None = None
    ) -> jax.Array:
        """(..., H) -> (..., 2H): ``[a, b]`` of `parallel_coefficients`."""
        del dropout  # always None: no dropout
        return jnp.concatenate(self.parallel_coefficients(params, xs), -1)

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: jax.Array,
        projected: jax.Array,
        dropout: None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """``h' = a * h + b`` from ``project_inputs``' (..., 2H); (h', h')."""
        del params, dropout
        a, b = jnp.split(projected, 2, axis=-1)
        new_h = a * carry.astype(projected.dtype) + b
        return new_h.astype(carry.dtype), new_h

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
          carry: h, (..., H).
          x: (..., H) input; leading axes are batch axes, possibly none.
          key: unused (no dropout); part of the cell protocol.
          training: unused (the same computation either way).

        Returns:
          (h', h'), each (..., H).
        """
        del key, training  # no dropout
        return projected_call(self, params, carry, x, features="H")
