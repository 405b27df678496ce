"""BatchNormalization (running statistics as explicit state) and
LayerNormalization, with Keras' defaults and parameter names."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn._validation import check_floating, check_rate
from jaxrnn.layers.core import PassMask, Shape, _last_dim

# Keras adds its backend epsilon to masked counts to avoid 0 / 0.
_COUNT_EPSILON = 1e-7


def _affine_params(features: int, center: bool, scale: bool, dtype) -> dict:
    params = {}
    if scale:
        params["gamma"] = jnp.ones((features,), dtype)
    if center:
        params["beta"] = jnp.zeros((features,), dtype)
    return params


def _normalize(x, mean, variance, params, epsilon):
    y = (x - mean) * jax.lax.rsqrt(variance + jnp.asarray(epsilon, x.dtype))
    if "gamma" in params:
        y = y * params["gamma"].astype(x.dtype)
    if "beta" in params:
        y = y + params["beta"].astype(x.dtype)
    return y


@dataclasses.dataclass(frozen=True)
class BatchNormalization(PassMask):
    """Keras' ``BatchNormalization`` over the last axis.

    The running statistics are params entries (``moving_mean``,
    ``moving_variance``, non-trainable as in Keras) and are never updated in
    place: ``layer(params, x, training=True)`` normalises with the batch's
    statistics, and ``layer.apply(params, x, training=True)`` also returns
    the params with the statistics moved, for the caller to keep.

    Args:
      momentum: of the moving averages (Keras' default 0.99):
        ``moving = momentum * moving + (1 - momentum) * batch``.
      epsilon: added to the variance (Keras' default 1e-3).
      center: learn an offset ``beta``.
      scale: learn a scale ``gamma``.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``{'gamma', 'beta', 'moving_mean', 'moving_variance'}``, each (D,).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> bn = BatchNormalization()
      >>> params = bn.init(jax.random.key(0), (None, 3))
      >>> y, new = bn.apply(params, jnp.arange(6.0).reshape(2, 3), training=True)
      >>> [round(m, 4) for m in new["moving_mean"].tolist()]
      [0.015, 0.025, 0.035]
    """

    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    param_dtype: Any = "float32"

    non_trainable = ("moving_mean", "moving_variance")

    def __post_init__(self):
        check_rate("momentum", self.momentum)

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Creates the params for inputs of `input_shape` (..., D).

        Args:
          key: PRNG key (unused: the initial values are fixed).
          input_shape: any shape ending with a known D.

        Returns:
          ``{'gamma': ones, 'beta': zeros, 'moving_mean': zeros,
          'moving_variance': ones}``, each (D,); no gamma without `scale`,
          no beta without `center`.
        """
        features = _last_dim("BatchNormalization", input_shape)
        params = _affine_params(features, self.center, self.scale,
                                self.param_dtype)
        params["moving_mean"] = jnp.zeros((features,), self.param_dtype)
        params["moving_variance"] = jnp.ones((features,), self.param_dtype)
        return params

    def _moments(self, x, mask):
        axes = tuple(range(x.ndim - 1))
        if mask is None:
            return jnp.mean(x, axes), jnp.var(x, axes)
        if mask.shape != x.shape[:-1]:
            raise ValueError(f"BatchNormalization `mask` must have shape "
                             f"{x.shape[:-1]}, got {mask.shape}.")
        weight = mask[..., None].astype(x.dtype)
        count = jnp.sum(weight, axes) + _COUNT_EPSILON
        mean = jnp.sum(x * weight, axes) / count
        variance = jnp.sum(jnp.square(x - mean) * weight, axes) / count
        return mean, variance

    def apply(self, params, x: jax.Array, *, mask=None, key=None,
              training=False) -> tuple[jax.Array, dict]:
        """Normalises and returns the moved statistics.

        Args:
          params: from `init`.
          x: (..., D) floating inputs, e.g. (B, T, D).
          mask: bool with x's leading shape, e.g. (B, T); in training only
            the valid entries make the batch statistics.
          key: ignored (every layer takes it).
          training: normalise with the batch's statistics and move the
            running ones; otherwise normalise with the running ones.

        Returns:
          ``(y, new_params)``: y (..., D) in x's dtype, and `params` with
          ``moving_mean`` and ``moving_variance`` moved towards the batch's
          (in training; `params` itself otherwise).

        Raises:
          ValueError: `mask` does not match x's leading shape.
        """
        check_floating("inputs", x)
        # Keras computes in at least float32: BN overflows in half precision.
        compute = x.astype(jnp.float32) if x.dtype.itemsize < 4 else x
        if not training:
            mean = params["moving_mean"].astype(compute.dtype)
            variance = params["moving_variance"].astype(compute.dtype)
            y = _normalize(compute, mean, variance, params, self.epsilon)
            return y.astype(x.dtype), params
        mean, variance = self._moments(compute, mask)
        y = _normalize(compute, mean, variance, params, self.epsilon)
        moved = dict(params)
        for name, batch_value in (("moving_mean", mean),
                                  ("moving_variance", variance)):
            old = params[name]
            new = (old * self.momentum
                   + jax.lax.stop_gradient(batch_value).astype(old.dtype)
                   * (1.0 - self.momentum))
            moved[name] = new
        return y.astype(x.dtype), moved

    def __call__(self, params, x: jax.Array, *, mask=None, key=None,
                 training=False) -> jax.Array:
        """Normalises (..., D) with batch statistics in training, the moving
        ones in inference; returns (..., D). See `apply` for the arguments
        and for the moved statistics."""
        return self.apply(params, x, mask=mask, training=training)[0]

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged."""
        return tuple(input_shape)


@dataclasses.dataclass(frozen=True)
class LayerNormalization(PassMask):
    """Keras' ``LayerNormalization`` over the last axis.

    Normalises each (D,) vector by its own mean and variance, then
    scales and offsets it: ``gamma * (x - mean) / sqrt(var + epsilon) +
    beta``.

    Args:
      epsilon: added to the variance (Keras' default 1e-3).
      center: learn an offset ``beta``.
      scale: learn a scale ``gamma``.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``{'gamma': (D,), 'beta': (D,)}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> ln = LayerNormalization()
      >>> params = ln.init(jax.random.key(0), (None, 4))
      >>> ln(params, jnp.arange(4.0)).mean().round(6).item()
      0.0
    """

    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    param_dtype: Any = "float32"

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Returns ``{'gamma': ones (D,), 'beta': zeros (D,)}`` for inputs
        of `input_shape` (..., D) (as `center` and `scale` ask)."""
        return _affine_params(_last_dim("LayerNormalization", input_shape),
                              self.center, self.scale, self.param_dtype)

    def __call__(self, params, x: jax.Array, *, mask=None, key=None,
                 training=False) -> jax.Array:
        """Normalises the last axis.

        Args:
          params: from `init`.
          x: (..., D) floating inputs.
          mask: ignored (each vector is normalised on its own).
          key: ignored (every layer takes it).
          training: ignored (the same computation either way).

        Returns:
          (..., D) in x's dtype (computed in at least float32).
        """
        check_floating("inputs", x)
        compute = x.astype(jnp.float32) if x.dtype.itemsize < 4 else x
        mean = jnp.mean(compute, -1, keepdims=True)
        variance = jnp.var(compute, -1, keepdims=True)
        return _normalize(compute, mean, variance, params,
                          self.epsilon).astype(x.dtype)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged."""
        return tuple(input_shape)
