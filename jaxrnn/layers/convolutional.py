"""Keras' ``Conv1D``: a 1-D convolution over time.

The kernel slides along T of (B, T, C) inputs (or (B, C, T), or one
unbatched example) with Keras' paddings, 'causal' included, dilation and
channel groups, through `jax.lax.conv_general_dilated`. The layout checks
it shares with the poolings are in `_sequence_layout`.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxrnn import activations, initializers
from jaxrnn._validation import (
    check_bool,
    check_floating,
    check_one_of,
    check_params,
    check_positive_int,
)
from jaxrnn.activations import ActivationLike
from jaxrnn.cells._base import REQUIRED
from jaxrnn.cells._convolution import int_tuple
from jaxrnn.initializers import InitializerLike
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


def _known_channels(owner: str, shape: tuple, channels: Any) -> int:
    """C as an int; raises unless it is known and positive."""
    if (
        isinstance(channels, bool)
        or not isinstance(channels, (numbers.Integral, np.integer))
        or channels <= 0
    ):
        raise ValueError(
            f"{owner} needs a known channel count C, got input shape {shape}."
        )
    return int(channels)


@dataclasses.dataclass(frozen=True)
class Conv1D(DropsMask):
    """Keras' ``Conv1D``: a 1-D convolution over time.

    ``y[t] = activation(sum_j x[t * strides + j * dilation_rate] @
    kernel[j] + bias)`` for valid padding; 'same' pads both ends (more at
    the end when odd, as TensorFlow and Keras do) so that T' = ceil(T /
    strides); 'causal' pads ``dilation_rate * (kernel_size - 1)`` steps at
    the start only, so y[t] sees no input after t. With `groups` G, input
    channels and filters split into G groups convolved separately.

    Keras' Conv1D does not support masking: a mask that reaches it is
    ignored with a warning and not passed on (`compute_mask` is None).

    Args:
      filters: output channels F, divisible by `groups`.
      kernel_size: window size k, an int or a 1-tuple.
      strides: step between windows, an int or a 1-tuple.
      padding: ``'valid'``, ``'same'`` or ``'causal'`` (any case).
      data_format: ``'channels_last'`` for (B, T, C) inputs or
        ``'channels_first'`` for (B, C, T); None means channels_last.
      dilation_rate: spacing of the window's taps; > 1 excludes strides > 1.
      groups: G; input channels C must be divisible by it.
      activation: Keras name, callable or None.
      use_bias: whether params hold ``bias``.
      kernel_initializer: for ``kernel``; Keras name or callable (fans
        count the window: `fan_in = k * C / G`, `fan_out = k * F`, as Keras).
      bias_initializer: for ``bias``.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``{'kernel': (k, C / G, F), 'bias': (F,)}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = Conv1D(8, 3, padding="causal", activation="relu")
      >>> params = layer.init(jax.random.key(0), (None, 10, 4))
      >>> params["kernel"].shape, layer(params, jnp.ones((2, 10, 4))).shape
      ((3, 4, 8), (2, 10, 8))
    """

    filters: int
    kernel_size: int | tuple[int]
    strides: int | tuple[int] = 1
    padding: str = "valid"
    data_format: str | None = "channels_last"
    dilation_rate: int | tuple[int] = 1
    groups: int = 1
    activation: ActivationLike = None
    use_bias: bool = True
    kernel_initializer: InitializerLike = "glorot_uniform"
    bias_initializer: InitializerLike = "zeros"
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_positive_int("filters", self.filters)
        check_positive_int("groups", self.groups)
        if self.filters % self.groups:
            raise ValueError(
                f"`filters` must be divisible by `groups`, got "
                f"filters={self.filters}, groups={self.groups}."
            )
        # Keras' spellings normalised (3 is (3,), 'SAME' is 'same'), so
        # equal layers compare and hash equal.
        normalised = {
            "kernel_size": int_tuple("kernel_size", self.kernel_size, 1),
            "strides": int_tuple("strides", self.strides, 1),
            "dilation_rate": int_tuple("dilation_rate", self.dilation_rate, 1),
            "padding": (
                self.padding.lower()
                if isinstance(self.padding, str)
                else self.padding
            ),
            "data_format": standardize_data_format(self.data_format),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)
        check_one_of("padding", self.padding, ("valid", "same", "causal"))
        if single(self.strides) > 1 and single(self.dilation_rate) > 1:
            raise ValueError(
                "`strides` > 1 and `dilation_rate` > 1 exclude each other (as "
                f"in Keras), got strides={self.strides}, dilation_rate="
                f"{self.dilation_rate}."
            )
        check_bool("use_bias", self.use_bias)
        activations.get(self.activation)
        initializers.get(self.kernel_initializer)
        initializers.get(self.bias_initializer)

    def _layout(
        self, input_shape: Shape, name: str = "input_shape"
    ) -> tuple[tuple, Any, int, Any]:
        """(batch, T, C, T') for a checked input shape."""
        batch, steps, channels = sequence_layout(
            "Conv1D", input_shape, known_format(self.data_format), name
        )
        shape = tuple(input_shape)
        channels = _known_channels("Conv1D", shape, channels)
        if channels % self.groups:
            raise ValueError(
                f"Conv1D with groups={self.groups} needs input channels "
                f"divisible by {self.groups}, got {channels} channels in "
                f"{name} {shape}."
            )
        out = output_steps(
            "Conv1D",
            steps,
            window=single(self.kernel_size),
            stride=single(self.strides),
            dilation=single(self.dilation_rate),
            padding=self.padding,
            input_shape=shape,
        )
        return batch, steps, channels, out

    def _param_shapes(self, channels: int) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            "kernel": (
                single(self.kernel_size),
                channels // self.groups,
                self.filters,
            )
        }
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Creates the params for inputs of `input_shape`.

        Args:
          key: PRNG key.
          input_shape: (B, T, C) or (T, C) (channels_first (B, C, T) or
            (C, T)) with a known C; None for unknown batch or time sizes.

        Returns:
          ``{'kernel': (k, C / G, F), 'bias': (F,)}`` (no bias without
          `use_bias`).
        """
        channels = self._layout(input_shape)[2]
        shapes = self._param_shapes(channels)
        k_kernel, k_bias = jax.random.split(key)
        params = {
            "kernel": initializers.initialize(
                self.kernel_initializer,
                k_kernel,
                shapes["kernel"],
                self.param_dtype,
            )
        }
        if self.use_bias:
            params["bias"] = initializers.initialize(
                self.bias_initializer, k_bias, shapes["bias"], self.param_dtype
            )
        return params

    def _check_params(self, params: Any, channels: int, shape: tuple) -> None:
        kernel = params.get("kernel") if isinstance(params, Mapping) else None
        kernel_shape = () if kernel is None else tuple(np.shape(kernel))
        expected = self._param_shapes(channels)
        if (
            len(kernel_shape) == 3
            and kernel_shape[::2] == expected["kernel"][::2]
            and kernel_shape[1] != expected["kernel"][1]
        ):
            raise ValueError(
                f"Conv1D expects inputs with {kernel_shape[1] * self.groups} "
                f"channels for its kernel {kernel_shape} (groups="
                f"{self.groups}), got inputs of shape {shape}."
            )
        check_params("Conv1D", params, expected)

    def __call__(
        self,
        params: dict[str, jax.Array],
        x: ArrayLike = REQUIRED,
        *,
        mask=None,
        key=None,
        training=False,
    ) -> jax.Array:
        """Convolves over time.

        Args:
          params: from `init`.
          x: (B, T, C) or unbatched (T, C) floating inputs (channels_first
            (B, C, T) or (C, T)).
          mask: ignored with a warning: Keras' Conv1D does not support
            masking.
          key: ignored (every layer takes it).
          training: ignored (every layer takes it).

        Returns:
          (B, T', F) (channels_first (B, F, T')); unbatched (T', F).

        Raises:
          ValueError: `x` has not rank 2 or 3, or channels that do not fit
            the kernel, or too few steps for 'valid' padding.
          TypeError: `x` is not floating.
        """
        check_layer_call(self, x, "x")
        self._drop_mask(mask)
        x = jnp.asarray(x)
        shape = x.shape
        _, _, channels, _ = self._layout(shape, "inputs")
        check_floating("inputs", x)
        self._check_params(params, channels, shape)
        batched = x if x.ndim == 3 else x[None]
        window, dilation = single(self.kernel_size), single(self.dilation_rate)
        # Causal: pad the start only, so step t sees inputs up to t (Keras).
        padding = (
            [(dilation * (window - 1), 0)]
            if self.padding == "causal"
            else self.padding.upper()
        )
        spec = "NWC" if self.data_format == "channels_last" else "NCW"
        y = lax.conv_general_dilated(
            batched,
            params["kernel"].astype(x.dtype),
            window_strides=(single(self.strides),),
            padding=padding,
            rhs_dilation=(dilation,),
            dimension_numbers=(spec, "WIO", spec),
            feature_group_count=self.groups,
        )
        if self.use_bias:
            bias = params["bias"].astype(x.dtype)
            y = y + (
                bias if self.data_format == "channels_last" else bias[:, None]
            )
        y = activations.get(self.activation)(y)
        return y if x.ndim == 3 else y[0]

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """Keras' ``compute_output_shape``: (B, T', F) for (B, T, C)
        (channels_first (B, F, T')); unbatched (T', F); None stays None.

        Example:
          >>> Conv1D(6, 3, strides=2).output_shape((None, 11, 4))
          (None, 5, 6)
        """
        batch, _, _, out = self._layout(input_shape)
        return with_steps(
            batch, out, self.filters, known_format(self.data_format)
        )
