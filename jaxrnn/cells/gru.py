"""Gated recurrent unit, Keras' GRUCell (gate order z, r, h)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxrnn import activations
from jaxrnn._masking import keep_where
from jaxrnn._validation import check_positive_int
from jaxrnn.activations import ActivationLike
from jaxrnn.cells._base import DropoutMasks, KerasCell, init_common


@dataclasses.dataclass(frozen=True)
class GRUCell(KerasCell):
    """One GRU step with Keras' layout and gate order (z, r, h).

    ``z, r = recurrent_activation(...)``, candidate
    ``hh = activation(x_h + r * (h @ U_h + b_rh))`` when ``reset_after``
    (Keras' default, and PyTorch's GRU), else
    ``hh = activation(x_h + (r * h) @ U_h)``; then ``h' = z * h + (1 - z) * hh``.

    Args:
      units: hidden size H, a positive int.
      activation: for the candidate; Keras name or callable.
      recurrent_activation: for the gates z, r.
      use_bias: whether params hold a ``bias``: (2, 3H) with reset_after
        (row 0 input bias, row 1 recurrent bias), else (3H,).
      kernel_initializer: for ``kernel`` (D, 3H).
      recurrent_initializer: for ``recurrent_kernel`` (H, 3H).
      bias_initializer: for ``bias``.
      reset_after: apply the reset gate after the recurrent matmul.
      dropout: rate in [0, 1) for the inputs (one mask per sequence).
      recurrent_dropout: rate in [0, 1) for the previous hidden state.
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.
      precision: `jax.lax.Precision` (or its name) for the matmuls.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = GRUCell(4)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> h, y = cell(params, cell.initial_carry(), jnp.ones(3))
      >>> h.shape, params["bias"].shape
      ((4,), (2, 12))
    """

    units: int
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    reset_after: bool = dataclasses.field(default=True, kw_only=True)

    gates = 3

    def _bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """Keras' shapes: kernel (D, 3H), recurrent_kernel (H, 3H), bias."""
        shapes: dict[str, tuple[int, ...]] = {
            "kernel": (input_dim, 3 * self.units),
            "recurrent_kernel": (self.units, 3 * self.units),
        }
        if self.use_bias:
            shapes["bias"] = self._bias_shape()
        return shapes

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """Returns {"kernel": (D, 3H), "recurrent_kernel": (H, 3H),
        "bias": (2, 3H) or (3H,)}."""
        check_positive_int("input_dim", input_dim)
        return init_common(self, key, self.param_shapes(input_dim))

    def _input_bias(self, params):
        if "bias" not in params:
            return None
        return params["bias"][0] if self.reset_after else params["bias"]

    @property
    def split_step(self) -> bool:
        """Whether a step is `apply_gates` after one recurrent matmul: only
        with ``reset_after`` (reset-before multiplies ``r * h`` before the
        candidate's matmul)."""
        return self.reset_after

    def project_recurrent(
        self, params: dict[str, jax.Array], h_in: jax.Array
    ) -> jax.Array:
        """(..., H) -> (..., 3H): ``h_in @ recurrent_kernel`` plus the
        recurrent bias (``bias[1]``); `reset_after` cells only."""
        if not self.reset_after:
            raise TypeError(
                "GRUCell(reset_after=False) has no split step: "
                "its candidate multiplies r * h by the kernel."
            )
        inner = self._matmul(h_in, params["recurrent_kernel"])
        if "bias" in params:
            inner = inner + params["bias"][1].astype(inner.dtype)
        return inner

    # `apply_gates` takes `keep`: a masked step holds the carry through its
    # update gate (as LSTMCell does, jaxrnn/_fused.py).
    gates_take_keep = True

    def apply_gates(
        self,
        carry: jax.Array,
        projected: jax.Array,
        recurrent: jax.Array,
        keep: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """The elementwise rest of a `reset_after` step.

        Args:
          carry: h (..., H).
          projected: ``x @ kernel + bias[0]``, (..., 3H).
          recurrent: ``h @ recurrent_kernel + bias[1]``, (..., 3H).
          keep: bool (...), or None; where False the step is masked: the
            carry comes back unchanged and y is unspecified.

        Returns:
          (h', h'); the carry keeps its dtype.
        """
        act = activations.get(self.activation)
        gate = activations.get(self.recurrent_activation)
        dtype = projected.dtype
        x_z, x_r, x_h = jnp.split(projected, 3, axis=-1)
        r_z, r_r, r_h = jnp.split(recurrent, 3, axis=-1)
        z = gate(x_z + r_z)
        r = gate(x_r + r_r)
        candidate = act(x_h + r * r_h)
        update = (1 - z) * candidate
        # A masked step gets an update gate of 1 and drops the candidate:
        # 1 * h + 0, the same number (in the carry's own dtype only;
        # otherwise it is selected).
        hold_by_gate = carry.dtype == dtype
        if hold_by_gate:
            z = keep_where(keep, z, jnp.ones((), dtype))
            update = keep_where(keep, update, jnp.zeros((), dtype))
        y = z * carry.astype(dtype) + update
        new_h = y.astype(carry.dtype)
        if not hold_by_gate:
            new_h = keep_where(keep, new_h, carry)
        return new_h, y

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: jax.Array,
        projected: jax.Array,
        dropout: DropoutMasks | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Recurrent half of a step; `projected` is ``x @ kernel + input bias``.

        Args:
          carry: h (..., H). projected: (..., 3H).

        Returns:
          (h', h'); the carry keeps its dtype.
        """
        dtype = projected.dtype
        h_in = self.recurrent_input(carry, dropout, dtype)
        if self.reset_after:
            return self.apply_gates(
                carry, projected, self.project_recurrent(params, h_in)
            )
        act = activations.get(self.activation)
        gate = activations.get(self.recurrent_activation)
        kernel = params["recurrent_kernel"]
        units = self.units
        x_z, x_r, x_h = jnp.split(projected, 3, axis=-1)
        inner = self._matmul(h_in, kernel[:, : 2 * units])
        r_z, r_r = jnp.split(inner, 2, axis=-1)
        z = gate(x_z + r_z)
        r = gate(x_r + r_r)
        candidate = act(x_h + self._matmul(r * h_in, kernel[:, 2 * units :]))
        new_h = z * carry.astype(dtype) + (1 - z) * candidate
        return new_h.astype(carry.dtype), new_h
