"""Keras' ``TimeDistributed``: one layer applied at every time step.

The wrapped layer sees one (B, ...) time slice at a time, through
`jax.vmap` over the time axis of (B, T, ...) inputs, with its own params
shared by every step. A mask (B, T, ...) reaches the inner layer slice by
slice when its call takes one, as in Keras.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn.layers._base import PassMask
from jaxrnn.layers._common import shape_tuple
from jaxrnn.typing import Shape


def _takes_mask(layer: Any) -> bool:
    """Whether ``layer(...)`` names a `mask` parameter (Keras'
    ``_call_has_mask_arg``: a mere ``**kwargs`` does not count)."""
    # masking imports core, which imports this module.
    from jaxrnn.layers.masking import DropsMask

    if isinstance(layer, DropsMask):  # Keras' Conv1D, pooling: no mask arg
        return False
    try:
        parameters = inspect.signature(layer).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return "mask" in parameters


def _check_step_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """`mask` as an array whose leading axes are the inputs' (B, T)."""
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"TimeDistributed `mask` must be a bool array, got {mask.dtype}."
        )
    if mask.ndim < 2 or mask.shape[:2] != shape[:2]:
        raise ValueError(
            f"TimeDistributed `mask` must have shape (B, T) or (B, T, ...) "
            f"with the inputs' (B, T) = {shape[:2]}, got {mask.shape} for "
            f"inputs {shape}."
        )
    return mask


@dataclasses.dataclass(frozen=True)
class TimeDistributed(PassMask):
    """Keras' ``TimeDistributed``: the same layer at every time step.

    Maps `layer` over axis 1 of (B, T, ...) inputs with `jax.vmap`. Params
    are the inner layer's own. As in Keras, a mask (B, T, ...) hands each
    step's slice ``mask[:, t]`` to an inner layer whose call names a `mask`
    parameter (a recurrent layer over (B, T, T2, D) gets its (B, T2) mask);
    an inner layer without one is called without it.

    Args:
      layer: a layer with ``init``, ``output_shape`` and
        ``layer(params, x, *, key, training)`` (and optionally ``mask``),
        applied to each (B, ...) time slice.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn.layers import Dense
      >>> layer = TimeDistributed(Dense(2))
      >>> params = layer.init(jax.random.key(0), (None, 5, 3))
      >>> layer(params, jnp.ones((4, 5, 3))).shape
      (4, 5, 2)
    """

    layer: Any

    def init(self, key: jax.Array, input_shape: Shape) -> Any:
        """The inner layer's params for one time slice of (B, T, ...).

        Args:
          key: PRNG key.
          input_shape: (B, T, ...), None for unknown sizes.

        Returns:
          ``layer.init(key, (B, ...))``.
        """
        shape = shape_tuple(input_shape, "(None, T, D)")
        if len(shape) < 3:
            raise ValueError(
                "TimeDistributed needs inputs (B, T, ...), got "
                f"input_shape {shape}."
            )
        return self.layer.init(key, (shape[0],) + shape[2:])

    def __call__(
        self, params, x: ArrayLike, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Applies the inner layer at every time step.

        Args:
          params: the inner layer's params.
          x: (B, T, ...).
          mask: optional bool (B, T) or (B, T, ...); step t hands
            ``mask[:, t]`` to an inner layer that takes a mask. The same
            mask goes on to the next layer (`compute_mask`).
          key: PRNG key for the inner layer, split into one key per step.
          training: passed to the inner layer.

        Returns:
          (B, T, ...) with the inner layer's output at each step.

        Raises:
          TypeError: `mask` is not bool.
          ValueError: `x` has no time axis, or `mask` does not start with
            x's (B, T) (Keras' check, keras/src/layers/rnn/time_distributed.py).
        """
        x = jnp.asarray(x)
        if x.ndim < 3:
            raise ValueError(
                "TimeDistributed needs inputs (B, T, ...), got "
                f"shape {x.shape}."
            )
        if mask is not None:
            mask = _check_step_mask(mask, x.shape)
            if not _takes_mask(self.layer):
                mask = None
        # A key per step, so a random inner layer (Dropout) draws a fresh
        # mask at every step, as Keras' TimeDistributed does.
        keys = None if key is None else jax.random.split(key, x.shape[1])

        def step(x_t, mask_t, key_t):
            kwargs = {} if mask_t is None else {"mask": mask_t}
            if key_t is not None:
                kwargs["key"] = key_t
            return self.layer(params, x_t, training=training, **kwargs)

        in_axes = (1, None if mask is None else 1, None if keys is None else 0)
        return jax.vmap(step, in_axes=in_axes, out_axes=1)(x, mask, keys)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """(B, T, ...) with the inner layer's output shape per step."""
        shape = shape_tuple(input_shape, "(None, T, D)")
        if len(shape) < 3:
            raise ValueError(
                "TimeDistributed needs inputs (B, T, ...), got "
                f"input_shape {shape}."
            )
        inner = self.layer.output_shape((shape[0],) + shape[2:])
        return (inner[0], shape[1]) + tuple(inner[1:])
