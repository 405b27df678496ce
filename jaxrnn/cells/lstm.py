"""Long short-term memory, Keras' LSTMCell (gate order i, f, c, o)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import activations, initializers
from jaxrnn._masking import keep_where
from jaxrnn._validation import check_positive_int
from jaxrnn.activations import ActivationLike
from jaxrnn.cells._base import KerasCell, init_common


@dataclasses.dataclass(frozen=True)
class LSTMCell(KerasCell):
    """One LSTM step with Keras' layout and gate order (i, f, c, o).

    ``z = x @ kernel + h @ recurrent_kernel + bias`` split in four;
    ``c' = f * c + i * activation(z_c)``, ``h' = o * activation(c')`` with
    ``i, f, o = recurrent_activation(z_i, z_f, z_o)``.

    Holds hyperparameters only; hashable, so it can be a static argument of
    `jax.jit`. Arguments and defaults are Keras'.

    Args:
      units: hidden size H, a positive int.
      activation: for the candidate and the output; Keras name or callable.
      recurrent_activation: for the gates i, f, o.
      use_bias: whether params hold a ``bias`` (4H,).
      kernel_initializer: for ``kernel`` (D, 4H).
      recurrent_initializer: for ``recurrent_kernel`` (H, 4H).
      bias_initializer: for ``bias`` (4H,).
      unit_forget_bias: start the forget-gate bias at one (Keras' default).
      dropout: rate in [0, 1) for the inputs (one mask per sequence).
      recurrent_dropout: rate in [0, 1) for the previous hidden state.
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.
      precision: `jax.lax.Precision` (or its name) for the matmuls.

    The carry is the tuple ``(h, c)``, each (..., H).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = LSTMCell(4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> (h, c), y = cell(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
      >>> h.shape, params["bias"].shape
      ((2, 4), (16,))
    """

    units: int
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    unit_forget_bias: bool = dataclasses.field(default=True, kw_only=True)

    gates = 4

    @property
    def state_size(self) -> list[int]:
        """Keras' cell protocol: [H, H] for (h, c)."""
        return [self.units, self.units]

    def initial_carry(
        self, batch_shape: tuple[int, ...] = (), dtype: Any = None
    ) -> tuple[jax.Array, jax.Array]:
        """``(h, c)``, zeros of shape `(*batch_shape, H)` each."""
        h = super().initial_carry(batch_shape, dtype)
        return h, jnp.zeros_like(h)

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """Keras' shapes: kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H,)."""
        shapes: dict[str, tuple[int, ...]] = {
            "kernel": (input_dim, 4 * self.units),
            "recurrent_kernel": (self.units, 4 * self.units),
        }
        if self.use_bias:
            shapes["bias"] = (4 * self.units,)
        return shapes

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """Returns {"kernel": (D, 4H), "recurrent_kernel": (H, 4H),
        "bias": (4H,)}; with unit_forget_bias the f slice of bias is ones."""
        check_positive_int("input_dim", input_dim)
        bias_init = (
            initializers.UnitForgetBias(self.bias_initializer, self.units)
            if self.unit_forget_bias
            else None
        )
        return init_common(self, key, self.param_shapes(input_dim), bias_init)

    def _input_bias(self, params):
        return params.get("bias")

    def _carry_h(self, carry):
        return carry[0]

    # `apply_gates` takes `keep`: a masked step holds the carry through its
    # gates (jaxrnn/_fused.py).
    gates_take_keep = True

    def apply_gates(
        self,
        carry: tuple[jax.Array, jax.Array],
        projected: jax.Array,
        recurrent: jax.Array,
        keep: jax.Array | None = None,
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """The elementwise rest of a step.

        Args:
          carry: ``(h, c)``, each (..., H).
          projected: ``x @ kernel + bias``, (..., 4H).
          recurrent: ``h @ recurrent_kernel``, (..., 4H).
          keep: bool (...), or None; where False the step is masked: the
            carry comes back unchanged, and so does h as y where the
            compute dtype is the carry's (in another, y is unspecified).

        Returns:
          ((h', c'), h'); the carry keeps its dtype.
        """
        act = activations.get(self.activation)
        gate = activations.get(self.recurrent_activation)
        h, c = carry
        dtype = projected.dtype
        z_i, z_f, z_c, z_o = jnp.split(projected + recurrent, 4, axis=-1)
        forget_gate = gate(z_f)
        candidate = gate(z_i) * act(z_c)
        # A masked step opens the forget gate and drops the candidate, so c
        # comes back as 1 * c + 0, the same number. Selecting c after the
        # fact instead let XLA:CPU copy each step's select chain into the
        # later steps of an unrolled chunk and split the gates into
        # separate kernels (43 fusions instead of 34 in the forward pass:
        # longer compiles, docs/design-notes.md#masked-steps). In another
        # dtype c would be rounded, so it is selected.
        hold_by_gates = c.dtype == dtype
        if hold_by_gates:
            forget_gate = keep_where(keep, forget_gate, jnp.ones((), dtype))
            candidate = keep_where(keep, candidate, jnp.zeros((), dtype))
        new_c = forget_gate * c.astype(dtype) + candidate
        y = gate(z_o) * act(new_c)
        new_c = new_c.astype(c.dtype)
        if not hold_by_gates:
            new_c = keep_where(keep, new_c, c)
        if h.dtype == dtype:
            # y may be anything at a masked step, so it is the held h: one
            # value for the carry and the output. Two (the select and y)
            # made XLA:CPU split a masked step into 4 kernels instead of 2,
            # tanh(c) and the output gate each on their own.
            y = keep_where(keep, y, h)
            return (y, new_c), y
        return (keep_where(keep, y.astype(h.dtype), h), new_c), y
