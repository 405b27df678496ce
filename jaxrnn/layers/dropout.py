"""Keras' ``Dropout``: random zeroing in training, from an explicit key.

The layer holds no state and no params: each call in training draws its
keep mask from the `key` it is given, optionally shared along axes
through ``noise_shape``; in inference it is the identity.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn._validation import check_rate, describe
from jaxrnn.layers._base import PassMask
from jaxrnn.typing import Shape


@dataclasses.dataclass(frozen=True)
class Dropout(PassMask):
    """Keras' ``Dropout``: zero a fraction `rate` of inputs in training and
    scale the rest by 1 / (1 - rate); the identity in inference.

    Args:
      rate: in [0, 1).
      noise_shape: optional shape of the keep mask, a tuple (or list) of
        the inputs' rank holding None (the inputs' size), 1 (one draw shared
        along that axis) or the inputs' size, e.g. ``(None, 1, None)`` for
        one mask per sequence.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = Dropout(0.5)
      >>> layer({}, jnp.ones(3)).tolist()
      [1.0, 1.0, 1.0]
      >>> y = layer({}, jnp.ones(1000), key=jax.random.key(0), training=True)
      >>> sorted(set(y.tolist()))
      [0.0, 2.0]
    """

    rate: float
    noise_shape: tuple[Any, ...] | None = None

    def __post_init__(self):
        check_rate("rate", self.rate)
        if self.noise_shape is not None:
            # A tuple, as Keras stores it, and hashable for jax.jit.
            object.__setattr__(
                self, "noise_shape", _checked_noise_shape(self.noise_shape)
            )

    def init(self, key: jax.Array, input_shape: Shape = ()) -> dict:
        """Returns ``{}``: dropout has no params."""
        return {}

    def __call__(
        self, params, x: ArrayLike, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Drops inputs in training.

        Args:
          params: ``{}``.
          x: any shape, floating.
          mask: ignored.
          key: PRNG key; needed when `training` and ``rate > 0``.
          training: drop; otherwise return `x` unchanged.

        Returns:
          `x` with a fraction `rate` of entries zeroed and the rest scaled
          by 1 / (1 - rate), in training; `x` otherwise.

        Raises:
          ValueError: in training with ``rate > 0`` and no `key`.
        """
        x = jnp.asarray(x)
        if not training or self.rate == 0:
            return x
        if key is None:
            raise ValueError(
                f"Dropout(rate={self.rate}) in training needs a "
                "PRNG `key`; got key=None."
            )
        shape = x.shape
        if self.noise_shape is not None:
            shape = _keep_shape(self.noise_shape, x.shape)
        keep = jax.random.bernoulli(key, 1.0 - self.rate, shape)
        return jnp.where(
            keep,
            x / jnp.asarray(1.0 - self.rate, x.dtype),
            jnp.zeros((), x.dtype),
        )

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged."""
        return tuple(input_shape)


def _checked_noise_shape(noise_shape: Any) -> tuple[int | None, ...]:
    """`noise_shape` as a tuple of positive ints and None (Keras' rules,
    keras/src/layers/regularization/dropout.py)."""
    if isinstance(noise_shape, (str, bytes)) or not hasattr(
        noise_shape, "__iter__"
    ):
        raise TypeError(
            "Dropout `noise_shape` must be a tuple or list of "
            f"ints and None, got {describe(noise_shape)}."
        )
    noise_shape = tuple(noise_shape)
    for d in noise_shape:
        if d is not None and (
            isinstance(d, bool) or not isinstance(d, numbers.Integral)
        ):
            raise TypeError(
                "Dropout `noise_shape` must hold ints and None, "
                f"got {noise_shape}."
            )
        if d is not None and d <= 0:
            raise ValueError(
                "Dropout `noise_shape` sizes must be positive "
                f"ints or None, got {noise_shape}."
            )
    return tuple(None if d is None else int(d) for d in noise_shape)


def _keep_shape(
    noise_shape: tuple[Any, ...], shape: tuple[int, ...]
) -> tuple[int, ...]:
    """`noise_shape` with x's sizes for None; each size must be x's or 1
    (a mask shared along that axis)."""
    if len(noise_shape) != len(shape):
        raise ValueError(
            f"Dropout `noise_shape` {noise_shape} must "
            f"have the inputs' rank {len(shape)}, got inputs "
            f"of shape {shape}."
        )
    noise = tuple(n if d is None else d for n, d in zip(shape, noise_shape))
    if any(d not in (1, n) for n, d in zip(shape, noise)):
        raise ValueError(
            f"Dropout `noise_shape` {noise_shape} must "
            f"broadcast to the inputs' shape {shape}: each "
            "size None, 1 or the inputs' own."
        )
    return noise
