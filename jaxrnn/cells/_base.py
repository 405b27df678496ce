"""What the Keras-style cells share: dtypes, dropout masks, the input projection.

A built-in cell splits one step into two public halves so that `jaxrnn.rnn`
can hoist the input projection out of the recurrence:

  ``project_inputs(params, xs, dropout)``: (..., D) -> `(..., G*H)`, with bias;
  ``step_projected(params, carry, xp, dropout)``: the recurrent part of one step.

``dropout_masks(key, batch_shape, input_dim, training=...)`` draws the masks a
whole sequence shares. ``cell(params, carry, x)`` is exactly these three
composed, so the step-by-step and the hoisted paths compute the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrnn import activations, initializers
from jaxrnn._validation import (
    batch_shape_of,
    check_dtype_fields,
    check_params,
    check_positive_int,
    check_prng_key,
    check_rate,
)
from jaxrnn.cells._step import REQUIRED, projected_call
from jaxrnn.initializers import InitializerLike


def wider_float(a: Any, b: Any) -> jnp.dtype:
    """The float dtype both promote to, independent of JAX's promotion mode
    (bfloat16 and float16 meet at float32)."""
    a, b = jnp.dtype(a), jnp.dtype(b)
    if a == b:
        return a
    if a.itemsize != b.itemsize:
        return a if a.itemsize > b.itemsize else b
    return jnp.dtype(jnp.float32) if a.itemsize < 4 else jnp.dtype(jnp.float64)


class DropoutMasks(NamedTuple):
    """Per-sequence dropout masks, already scaled by 1 / (1 - rate).

    Attributes:
      inputs: `(*batch, D)` multiplier for the inputs, or None.
      recurrent: `(*batch, H)` multiplier for the previous hidden state, or
        None.
    """

    inputs: jax.Array | None
    recurrent: jax.Array | None


def _keep_mask(key, rate, shape, dtype):
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)


def dropout_key(
    cell: Any, key: jax.Array | None, training: bool
) -> jax.Array | None:
    """`key` when `cell` draws dropout masks (in training, with a rate
    above zero), else None; raises when it would draw them without one."""
    if not training or (cell.dropout == 0 and cell.recurrent_dropout == 0):
        return None
    if key is None:
        raise ValueError(
            f"{type(cell).__name__} has dropout={cell.dropout}, "
            f"recurrent_dropout={cell.recurrent_dropout} and training=True, "
            "so it needs a PRNG `key`; got key=None."
        )
    return key


def draw_masks(
    cell: Any,
    key: jax.Array,
    input_shape: tuple[int, ...],
    recurrent_shape: tuple[int, ...],
    dtype: Any,
) -> DropoutMasks:
    """`cell`'s input and recurrent keep masks, of those shapes (None for a
    zero rate), scaled by 1 / (1 - rate)."""
    input_key, recurrent_key = jax.random.split(key)
    inputs = recurrent = None
    if cell.dropout > 0:
        inputs = _keep_mask(input_key, cell.dropout, input_shape, dtype)
    if cell.recurrent_dropout > 0:
        recurrent = _keep_mask(
            recurrent_key, cell.recurrent_dropout, recurrent_shape, dtype
        )
    return DropoutMasks(inputs, recurrent)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KerasCell:
    """Base of the built-in cells: the keyword arguments they all take.

    A subclass adds ``units`` and its activations, and defines ``gates`` (G),
    ``param_shapes(input_dim)``, ``_input_bias(params)`` and
    ``step_projected``.
    """

    use_bias: bool = True
    kernel_initializer: InitializerLike = "glorot_uniform"
    recurrent_initializer: InitializerLike = "orthogonal"
    bias_initializer: InitializerLike = "zeros"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None

    gates = 1

    if TYPE_CHECKING:
        # What a subclass defines (ConvLSTMCell: `filters` for `units`,
        # and its own `param_shapes` and step). A property here, not a
        # field: a field would be a required argument of every subclass.
        @property
        def units(self) -> int: ...

        def param_shapes(self, input_dim: Any) -> dict[str, tuple[int, ...]]:
            """The shapes `init` creates for inputs of `input_dim`."""
            ...

        def _input_bias(
            self, params: dict[str, jax.Array]
        ) -> jax.Array | None: ...

        def apply_gates(
            self, carry: Any, projected: jax.Array, recurrent: jax.Array
        ) -> tuple[Any, jax.Array]: ...

    def __post_init__(self):
        self._check_hyperparameters()

    def _check_hyperparameters(self) -> None:
        check_positive_int("units", self.units)
        self._check_common_fields()

    def _check_common_fields(self) -> None:
        """Rates, activations, initializers and dtypes: what every subclass
        shares, whatever it names its size."""
        check_rate("dropout", self.dropout)
        check_rate("recurrent_dropout", self.recurrent_dropout)
        for name in ("activation", "recurrent_activation"):
            if hasattr(self, name):
                activations.get(getattr(self, name))
        for name in (
            "kernel_initializer",
            "recurrent_initializer",
            "bias_initializer",
        ):
            initializers.get(getattr(self, name))
        check_dtype_fields(self, ("dtype", "param_dtype"))

    @property
    def state_size(self) -> Any:
        """Keras' cell protocol: the size of each state array."""
        return self.units

    @property
    def output_size(self) -> int:
        """Keras' cell protocol: the size of the output, H."""
        return self.units

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = None
    ) -> Any:
        """Zeros of shape `(*batch_shape, H)` (an int B means (B,)); dtype
        defaults to the cell's dtype (float32 when the cell's dtype is
        None)."""
        if dtype is None:
            dtype = jnp.float32 if self.dtype is None else self.dtype
        return jnp.zeros((*batch_shape_of(batch_shape), self.units), dtype)

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises if `params` lacks an array or has one of the wrong shape."""
        kernel = params.get("kernel") if isinstance(params, dict) else None
        expected = self.param_shapes(input_dim)["kernel"]
        if (
            kernel is not None
            and np.ndim(kernel) == 2
            and np.shape(kernel)[1:] == expected[1:]
            and np.shape(kernel)[0] != input_dim
        ):
            raise ValueError(
                f"{type(self).__name__} params['kernel'] must have shape "
                f"{tuple(expected)}, got {tuple(np.shape(kernel))}: the "
                f"inputs have {input_dim} features, but the params were "
                f"made for {np.shape(kernel)[0]}. Check the inputs' last "
                f"axis, or init the params with input_dim={input_dim}."
            )
        check_params(type(self).__name__, params, self.param_shapes(input_dim))

    def compute_dtype(self, params: Any, x: jax.Array) -> Any:
        """The dtype the step computes in: `dtype`, else inputs and params
        promoted."""
        if self.dtype is not None:
            return jnp.dtype(self.dtype)
        return wider_float(x.dtype, params["kernel"].dtype)

    def _matmul(self, a: jax.Array, w: jax.Array) -> jax.Array:
        return jnp.matmul(a, w.astype(a.dtype), precision=self.precision)

    def dropout_masks(
        self,
        key: jax.Array | None,
        batch_shape: tuple[int, ...],
        input_dim: int,
        *,
        training: bool,
        dtype: Any = jnp.float32,
    ) -> DropoutMasks | None:
        """Draws the masks one sequence shares at every step (Keras' rule).

        Returns None outside training or when both rates are zero.

        Raises:
          ValueError: dropout is asked for in training but `key` is None.
        """
        key = dropout_key(self, key, training)
        if key is None:
            return None
        return draw_masks(
            self,
            key,
            (*batch_shape, input_dim),
            (*batch_shape, self.units),
            dtype,
        )

    def project_inputs(
        self,
        params: dict[str, jax.Array],
        xs: jax.Array,
        dropout: DropoutMasks | None = None,
    ) -> jax.Array:
        """Input half of the step for any number of leading axes.

        Args:
          params: the dict from `init`.
          xs: (..., D) inputs; with dropout, the mask `(*batch, D)` broadcasts
            against the trailing axes (so a time axis may lead).
          dropout: from `dropout_masks`, or None.

        Returns:
          `(..., G*H)`: ``xs @ kernel + input bias`` in the compute dtype.
        """
        dtype = self.compute_dtype(params, xs)
        xs = xs.astype(dtype)
        if dropout is not None and dropout.inputs is not None:
            xs = xs * dropout.inputs.astype(dtype)
        projected = self._matmul(xs, params["kernel"])
        bias = self._input_bias(params)
        if bias is not None:
            projected = projected + bias.astype(dtype)
        return projected

    def _recurrent_input(
        self, carry_h: jax.Array, dropout, dtype
    ) -> jax.Array:
        h = carry_h.astype(dtype)
        if dropout is not None and dropout.recurrent is not None:
            h = h * dropout.recurrent.astype(dtype)
        return h

    # The split step: ``step_projected`` is ``apply_gates(carry, xp,
    # project_recurrent(params, recurrent_input(carry, dropout, dtype)))`` with
    # one matmul in `project_recurrent` and only elementwise work in
    # `apply_gates`. `jaxrnn.rnn` uses the split to differentiate a whole
    # sequence with one large GEMM per weight after the backward loop.
    split_step = True

    def recurrent_input(
        self, carry: Any, dropout: DropoutMasks | None, dtype: Any
    ) -> jax.Array:
        """The (..., H) vector the recurrent kernel multiplies: the carry's
        h in `dtype`, times the recurrent dropout mask if any."""
        return self._recurrent_input(self._carry_h(carry), dropout, dtype)

    def _carry_h(self, carry: Any) -> jax.Array:
        return carry

    def project_recurrent(
        self, params: dict[str, jax.Array], h_in: jax.Array
    ) -> jax.Array:
        """(..., H) -> `(..., G*H)`: ``h_in @ recurrent_kernel`` (plus a
        recurrent bias where the cell has one)."""
        return self._matmul(h_in, params["recurrent_kernel"])

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: Any,
        projected: jax.Array,
        dropout: DropoutMasks | None = None,
    ) -> tuple[Any, jax.Array]:
        """Recurrent half of a step; `projected` is ``x @ kernel + input bias``.

        Args:
          params: the dict from `init`.
          carry: the previous carry, leaves (..., H).
          projected: `(..., G*H)`, from `project_inputs`.
          dropout: from `dropout_masks`, or None.

        Returns:
          (new_carry, y), y (..., H); the carry keeps its dtype.
        """
        h_in = self.recurrent_input(carry, dropout, projected.dtype)
        return self.apply_gates(
            carry, projected, self.project_recurrent(params, h_in)
        )

    def __call__(
        self,
        params: dict[str, jax.Array] = REQUIRED,
        carry: Any = REQUIRED,
        x: ArrayLike = REQUIRED,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[Any, jax.Array]:
        """Advances one time step.

        Args:
          params: the dict from `init`.
          carry: the previous carry, leaves of shape (..., H).
          x: (..., D) input; leading axes are batch axes, possibly none.
          key: PRNG key for dropout; needed only when training with dropout.
            The masks are a function of the key, so passing the same key at
            every step reuses one mask per sequence, as Keras does.
          training: whether dropout is active.

        Returns:
          (new_carry, y) with y of shape (..., H).

        Raises:
          TypeError, ValueError: an argument is missing, or `params`,
            `carry` or `x` do not fit the cell or each other (the carry's
            leading axes must be x's).
        """
        return projected_call(
            self, params, carry, x, key=key, training=training, dropout=True
        )


def init_common(
    cell,
    key: jax.Array,
    shapes: Mapping[str, tuple[int, ...]],
    bias_init: initializers.Initializer | None = None,
) -> dict[str, jax.Array]:
    """Builds {'kernel', 'recurrent_kernel'} and, when `shapes` has one,
    'bias', of `shapes` (the cell's `param_shapes`) with the cell's
    initializers; `bias_init` replaces the bias initializer."""
    check_prng_key("key", key)
    initializer: dict[str, initializers.InitializerLike] = {
        "kernel": cell.kernel_initializer,
        "recurrent_kernel": cell.recurrent_initializer,
        "bias": bias_init or cell.bias_initializer,
    }
    keys: dict[str, jax.Array] = dict(
        zip(("kernel", "recurrent_kernel", "bias"), jax.random.split(key, 3))
    )
    return {
        name: initializers.initialize(
            initializer[name], keys[name], shape, cell.param_dtype
        )
        for name, shape in shapes.items()
    }
