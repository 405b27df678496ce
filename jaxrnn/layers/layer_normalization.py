"""Keras' ``LayerNormalization``: each example normalised over its axes.

No state and no batch statistics: the mean and variance are each
example's own over ``axis`` (one or several axes), so training and
inference compute the same.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn import initializers
from jaxrnn._validation import check_bool, check_floating, describe
from jaxrnn.initializers import InitializerLike
from jaxrnn.layers._base import PassMask
from jaxrnn.layers._common import shape_tuple
from jaxrnn.layers._normalize import (
    axis_sizes,
    check_epsilon,
    check_norm_params,
    compute_dtype,
    is_int,
    normalize,
    resolve_axes,
)
from jaxrnn.typing import Shape


@dataclasses.dataclass(frozen=True)
class LayerNormalization(PassMask):
    """Keras' ``LayerNormalization`` over one or more axes.

    Normalises each example by the mean and variance over `axis`, then
    scales and offsets it: ``gamma * (x - mean) / sqrt(var + epsilon) +
    beta``.

    Args:
      axis: an int or a list/tuple of ints (negative counts from the end):
        the axes normalised together. Keras' default -1, the features.
      epsilon: added to the variance (Keras' default 1e-3).
      center: learn an offset ``beta``.
      scale: learn a scale ``gamma``.
      beta_initializer: Keras name or callable for ``beta``.
      gamma_initializer: for ``gamma``.
      rms_scaling: Keras' deprecated option, kept for its models: ``x /
        sqrt(var + epsilon) * gamma`` (the variance, not the mean square,
        as Keras computes it), always with gamma and never with beta, so
        `center` and `scale` do not apply.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``{'gamma', 'beta'}`` (as `center`, `scale` and `rms_scaling`
    ask), each shaped as the inputs at `axis` in ascending axis order, e.g.
    (D,) for the default.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> ln = LayerNormalization()
      >>> params = ln.init(jax.random.key(0), (None, 4))
      >>> ln(params, jnp.arange(4.0)).mean().round(6).item()
      0.0
    """

    axis: int | tuple[int, ...] = -1
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: InitializerLike = "zeros"
    gamma_initializer: InitializerLike = "ones"
    rms_scaling: bool = False
    param_dtype: Any = "float32"

    def __post_init__(self):
        axis = self.axis
        if isinstance(axis, (list, tuple)) and axis and all(map(is_int, axis)):
            object.__setattr__(self, "axis", tuple(int(a) for a in axis))
        elif not is_int(axis):
            raise TypeError(
                "LayerNormalization `axis` must be an int or a "
                f"non-empty list/tuple of ints, got "
                f"{describe(axis)}."
            )
        check_epsilon(self.epsilon)
        for name in ("center", "scale", "rms_scaling"):
            check_bool(name, getattr(self, name))
        initializers.get(self.beta_initializer)
        initializers.get(self.gamma_initializer)

    def _param_names(self) -> list[str]:
        names = ["gamma"] if self.scale or self.rms_scaling else []
        return names + (
            ["beta"] if self.center and not self.rms_scaling else []
        )

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Returns ``{'gamma': ones, 'beta': zeros}`` (with the default
        initializers; as `center`, `scale` and `rms_scaling` ask), each
        shaped as `input_shape` at `axis`, e.g. (D,) for (..., D)."""
        shape = axis_sizes("LayerNormalization", input_shape, self.axis)
        sources = {
            "gamma": self.gamma_initializer,
            "beta": self.beta_initializer,
        }
        names = self._param_names()
        return {
            name: initializers.initialize(
                sources[name], k, shape, self.param_dtype
            )
            for name, k in zip(names, jax.random.split(key, 2))
        }

    def __call__(
        self, params, x: ArrayLike, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Normalises over `axis`.

        Args:
          params: from `init`.
          x: floating inputs of any rank with `axis` in range, e.g.
            (B, T, D).
          mask: ignored (each example is normalised on its own).
          key: ignored (every layer takes it).
          training: ignored (the same computation either way).

        Returns:
          x's shape and dtype (computed in at least float32).

        Raises:
          ValueError: `axis` is out of range for x, or params do not fit.
        """
        check_floating("inputs", x)
        x = jnp.asarray(x)
        axes = resolve_axes("LayerNormalization", self.axis, x.ndim)
        sizes = tuple(x.shape[a] for a in axes)
        check_norm_params(
            "LayerNormalization", params, self._param_names(), sizes
        )
        compute = compute_dtype(x)
        shape = [1] * x.ndim
        for a in axes:
            shape[a] = x.shape[a]
        gamma, beta = (
            None
            if name not in params
            else jnp.reshape(params[name].astype(compute.dtype), shape)
            for name in ("gamma", "beta")
        )
        variance = jnp.var(compute, axes, keepdims=True)
        if self.rms_scaling:
            y = compute * jax.lax.rsqrt(
                variance + jnp.asarray(self.epsilon, compute.dtype)
            )
            y = y if gamma is None else y * gamma
        else:
            mean = jnp.mean(compute, axes, keepdims=True)
            y = normalize(compute, mean, variance, gamma, beta, self.epsilon)
        return y.astype(x.dtype)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged (`axis` must be in range for it)."""
        shape = shape_tuple(input_shape, "(None, D)", "(None, {})")
        resolve_axes("LayerNormalization", self.axis, len(shape))
        return shape
