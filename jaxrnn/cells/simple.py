"""The Elman cell, Keras' SimpleRNNCell."""

from __future__ import annotations

import dataclasses

import jax

from jaxrnn import activations
from jaxrnn._validation import check_positive_int
from jaxrnn.activations import ActivationLike
from jaxrnn.cells._base import KerasCell, init_common


@dataclasses.dataclass(frozen=True)
class SimpleRNNCell(KerasCell):
    """Elman step: ``h' = activation(x @ kernel + h @ recurrent_kernel + bias)``.

    Holds hyperparameters only; hashable, so it can be a static argument of
    `jax.jit`. Arguments and defaults are Keras'.

    Args:
      units: hidden size H, a positive int.
      activation: a Keras activation name, a callable, or None (linear).
      use_bias: whether params hold a ``bias`` (H,).
      kernel_initializer: for ``kernel`` (D, H); a Keras name or callable.
      recurrent_initializer: for ``recurrent_kernel`` (H, H).
      bias_initializer: for ``bias`` (H,).
      dropout: rate in [0, 1) for the inputs (one mask per sequence).
      recurrent_dropout: rate in [0, 1) for the previous hidden state.
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.
      precision: `jax.lax.Precision` (or its name) for the matmuls.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = SimpleRNNCell(4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> carry, y = cell(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
      >>> y.shape
      (2, 4)
    """

    units: int
    activation: ActivationLike = "tanh"

    gates = 1

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """Keras' shapes: kernel (D, H), recurrent_kernel (H, H), bias (H,)."""
        shapes: dict[str, tuple[int, ...]] = {
            "kernel": (input_dim, self.units),
            "recurrent_kernel": (self.units, self.units),
        }
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """Returns {"kernel": (D, H), "recurrent_kernel": (H, H), "bias": (H,)}."""
        check_positive_int("input_dim", input_dim)
        return init_common(self, key, self.param_shapes(input_dim))

    def _input_bias(self, params):
        return params.get("bias")

    def apply_gates(
        self, carry: jax.Array, projected: jax.Array, recurrent: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """The elementwise rest of a step: ``activation(projected +
        recurrent)``, all (..., H).

        Returns:
          (h, h); the carry keeps its dtype.
        """
        h = activations.get(self.activation)(projected + recurrent)
        return h.astype(carry.dtype), h
