"""Keras' pooling over time: MaxPooling1D, GlobalAveragePooling1D,
GlobalMaxPooling1D.

They read the sequence layout Conv1D does (`_sequence_layout`): (B, T, C),
channels_first (B, C, T), or one unbatched example. Only the average
honours a mask, as in Keras; the maxima drop it with Keras' warning.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxrnn._validation import check_bool, check_floating, check_one_of
from jaxrnn.cells._base import REQUIRED
from jaxrnn.cells._convolution import int_tuple
from jaxrnn.layers._base import PassMask
from jaxrnn.layers._common import check_layer_call
from jaxrnn.layers._sequence_layout import (
    known_format,
    output_steps,
    sequence_layout,
    single,
    standardize_data_format,
    with_steps,
)
from jaxrnn.layers.masking import DropsMask
from jaxrnn.typing import Shape


def _checked_inputs(owner: str, x: Any, data_format: str) -> jax.Array:
    """`x` as an array of rank 2 or 3 and a floating dtype."""
    x = jnp.asarray(x)
    sequence_layout(owner, x.shape, data_format, "inputs")
    check_floating("inputs", x)
    return x


def _steps_axis(data_format: str) -> int:
    # Negative, so that batched (B, T, C) and unbatched (T, C) agree.
    return -2 if data_format == "channels_last" else -1


@dataclasses.dataclass(frozen=True)
class MaxPooling1D(DropsMask):
    """Keras' ``MaxPooling1D``: the maximum over windows along time.

    Each channel separately: ``y[t] = max(x[t * strides : t * strides +
    pool_size])``. 'same' padding pads with -inf (more at the end when
    odd), so that T' = ceil(T / strides); 'valid' keeps whole windows only.

    Keras' MaxPooling1D does not support masking: a mask that reaches it
    is ignored with a warning and not passed on (`compute_mask` is None).

    Args:
      pool_size: window size p, an int or a 1-tuple.
      strides: step between windows, an int or a 1-tuple; None means
        `pool_size`.
      padding: ``'valid'`` or ``'same'`` (any case).
      data_format: ``'channels_last'`` for (B, T, C) inputs or
        ``'channels_first'`` for (B, C, T); None means channels_last.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[[1.0], [5.0], [2.0], [3.0], [4.0]]])
      >>> MaxPooling1D()({}, x)[0, :, 0].tolist()
      [5.0, 3.0]
      >>> MaxPooling1D(padding="same")({}, x)[0, :, 0].tolist()
      [5.0, 3.0, 4.0]
    """

    pool_size: int | tuple[int] = 2
    strides: int | tuple[int] | None = None
    padding: str = "valid"
    data_format: str | None = "channels_last"

    def __post_init__(self):
        pool_size = int_tuple("pool_size", self.pool_size, 1)
        strides = (
            pool_size
            if self.strides is None
            else int_tuple("strides", self.strides, 1)
        )
        padding = (
            self.padding.lower()
            if isinstance(self.padding, str)
            else self.padding
        )
        check_one_of("padding", padding, ("valid", "same"))
        # Keras' spellings normalised (2 is (2,), strides=None is
        # pool_size), so equal layers compare and hash equal.
        for name, value in (
            ("pool_size", pool_size),
            ("strides", strides),
            ("padding", padding),
            ("data_format", standardize_data_format(self.data_format)),
        ):
            object.__setattr__(self, name, value)

    def init(self, key: jax.Array, input_shape: Shape = ()) -> dict:
        """Returns ``{}``: pooling has no params."""
        return {}

    def _steps(self, input_shape: Shape, name: str) -> tuple[tuple, Any, Any]:
        batch, steps, channels = sequence_layout(
            "MaxPooling1D", input_shape, known_format(self.data_format), name
        )
        out = output_steps(
            "MaxPooling1D",
            steps,
            window=single(self.pool_size),
            stride=single(self.strides),
            dilation=1,
            padding=self.padding,
            input_shape=input_shape,
        )
        return batch, out, channels

    def __call__(
        self,
        params,
        x: ArrayLike = REQUIRED,
        *,
        mask=None,
        key=None,
        training=False,
    ) -> jax.Array:
        """Pools over time.

        Args:
          params: ``{}``.
          x: (B, T, C) or unbatched (T, C) floating inputs (channels_first
            (B, C, T) or (C, T)).
          mask: ignored with a warning: Keras' MaxPooling1D does not
            support masking.
          key: ignored (every layer takes it).
          training: ignored (every layer takes it).

        Returns:
          (B, T', C) (channels_first (B, C, T')); unbatched (T', C).
        """
        check_layer_call(self, x, "x")
        self._drop_mask(mask)
        data_format = known_format(self.data_format)
        x = _checked_inputs("MaxPooling1D", x, data_format)
        self._steps(x.shape, "inputs")
        window = [1] * x.ndim
        strides = [1] * x.ndim
        axis = x.ndim + _steps_axis(data_format)
        window[axis] = single(self.pool_size)
        strides[axis] = single(self.strides)
        # A concrete -inf start value: JAX then uses its max-pool primitive,
        # which has a gradient (the generic reduce_window has none).
        return lax.reduce_window(
            x,
            np.array(-np.inf, x.dtype),
            lax.max,
            window,
            strides,
            self.padding.upper(),
        )

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """Keras' ``compute_output_shape``: (B, T', C) for (B, T, C)
        (channels_first (B, C, T')); unbatched (T', C).

        Example:
          >>> MaxPooling1D(3, strides=2, padding="same").output_shape((None, 7, 4))
          (None, 4, 4)
        """
        batch, out, channels = self._steps(input_shape, "input_shape")
        return with_steps(batch, out, channels, known_format(self.data_format))


class _GlobalPooling1D:
    """The fields' checks and shapes shared by the global poolings."""

    # The subclasses' dataclass fields.
    data_format: str | None
    keepdims: bool

    def __post_init__(self):
        object.__setattr__(
            self, "data_format", standardize_data_format(self.data_format)
        )
        check_bool("keepdims", self.keepdims)

    def init(self, key: jax.Array, input_shape: Shape = ()) -> dict:
        """Returns ``{}``: pooling has no params."""
        return {}

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """Keras' ``compute_output_shape``: (B, C) for (B, T, C) or
        (B, C, T); with ``keepdims`` (B, 1, C), channels_first (B, C, 1).
        Unbatched inputs lose the B."""
        data_format = known_format(self.data_format)
        batch, _, channels = sequence_layout(
            type(self).__name__, input_shape, data_format
        )
        if self.keepdims:
            return with_steps(batch, 1, channels, data_format)
        return (*batch, channels)


@dataclasses.dataclass(frozen=True)
class GlobalAveragePooling1D(_GlobalPooling1D, PassMask):
    """Keras' ``GlobalAveragePooling1D``: the mean over time.

    With a mask, the mean of the valid steps only: ``sum(x * mask) /
    sum(mask)``, as Keras computes it (a row with no valid step gives NaN,
    0 / 0, in Keras too). The mask ends here: `compute_mask` is None.

    Args:
      data_format: ``'channels_last'`` for (B, T, C) inputs or
        ``'channels_first'`` for (B, C, T); None means channels_last.
      keepdims: keep the time axis, of size 1.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[[1.0], [3.0], [9.0]]])
      >>> layer = GlobalAveragePooling1D()
      >>> mask = jnp.array([[True, True, False]])
      >>> layer({}, x).tolist(), layer({}, x, mask=mask).tolist()
      ([[4.333333492279053]], [[2.0]])
    """

    data_format: str | None = "channels_last"
    keepdims: bool = False

    def __call__(
        self,
        params,
        x: ArrayLike = REQUIRED,
        *,
        mask=None,
        key=None,
        training=False,
    ) -> jax.Array:
        """Averages over time.

        Args:
          params: ``{}``.
          x: (B, T, C) or unbatched (T, C) floating inputs (channels_first
            (B, C, T) or (C, T)).
          mask: optional bool (B, T) (unbatched (T,)), True for valid steps.
          key: ignored (every layer takes it).
          training: ignored (every layer takes it).

        Returns:
          (B, C); with ``keepdims`` (B, 1, C) (channels_first (B, C, 1)).

        Raises:
          TypeError: `mask` is not bool.
          ValueError: `mask` does not have x's batch and time sizes.
        """
        check_layer_call(self, x, "x")
        data_format = known_format(self.data_format)
        x = _checked_inputs("GlobalAveragePooling1D", x, data_format)
        axis = _steps_axis(data_format)
        if mask is None:
            return jnp.mean(x, axis=axis, keepdims=self.keepdims)
        keep = self._checked_mask(mask, x)
        total = jnp.sum(
            jnp.where(keep, x, jnp.zeros((), x.dtype)),
            axis=axis,
            keepdims=self.keepdims,
        )
        return total / jnp.sum(
            keep.astype(x.dtype), axis=axis, keepdims=self.keepdims
        )

    def _checked_mask(self, mask: Any, x: jax.Array) -> jax.Array:
        """The bool mask with a size-1 channel axis, to broadcast on `x`."""
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            raise TypeError(
                f"`mask` must be a bool array, got {mask.dtype} "
                "(use mask.astype(bool))."
            )
        channel_axis = x.ndim - (
            1 if self.data_format == "channels_last" else 2
        )
        want = x.shape[:channel_axis] + x.shape[channel_axis + 1 :]
        if mask.shape != want:
            raise ValueError(
                f"`mask` must have shape {want} for inputs "
                f"{x.shape} ({self.data_format}), got "
                f"{mask.shape}."
            )
        return jnp.expand_dims(mask, channel_axis)

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None) -> None:
        """The mask for the next layer: None (time is pooled away)."""
        return None


@dataclasses.dataclass(frozen=True)
class GlobalMaxPooling1D(_GlobalPooling1D, DropsMask):
    """Keras' ``GlobalMaxPooling1D``: the maximum over time.

    Keras' GlobalMaxPooling1D does not support masking: a mask that
    reaches it is ignored with a warning and not passed on: masked steps
    count in the maximum, as in Keras.

    Args:
      data_format: ``'channels_last'`` for (B, T, C) inputs or
        ``'channels_first'`` for (B, C, T); None means channels_last.
      keepdims: keep the time axis, of size 1.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[[1.0, -2.0], [3.0, -5.0]]])
      >>> GlobalMaxPooling1D()({}, x).tolist()
      [[3.0, -2.0]]
    """

    data_format: str | None = "channels_last"
    keepdims: bool = False

    def __call__(
        self,
        params,
        x: ArrayLike = REQUIRED,
        *,
        mask=None,
        key=None,
        training=False,
    ) -> jax.Array:
        """Takes the maximum over time.

        Args:
          params: ``{}``.
          x: (B, T, C) or unbatched (T, C) floating inputs (channels_first
            (B, C, T) or (C, T)).
          mask: ignored with a warning, as Keras does.
          key: ignored (every layer takes it).
          training: ignored (every layer takes it).

        Returns:
          (B, C); with ``keepdims`` (B, 1, C) (channels_first (B, C, 1)).
        """
        check_layer_call(self, x, "x")
        self._drop_mask(mask)
        data_format = known_format(self.data_format)
        x = _checked_inputs("GlobalMaxPooling1D", x, data_format)
        return jnp.max(
            x, axis=_steps_axis(data_format), keepdims=self.keepdims
        )
