"""The frames of a gated convolutional cell (`ConvFrames`, a mixin of
`ConvLSTMCell`): their layout, the input and recurrent convolutions, the
checks of params, frames and carry, and the per-gate dropout masks."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn._validation import (
    check_floating,
    check_one_of,
    check_params,
    check_positive_int,
)
from jaxrnn.cells._base import DropoutMasks, draw_masks, dropout_key
from jaxrnn.cells._convolution import (
    DATA_FORMATS,
    PADDINGS,
    conv_output_size,
    convolve_frames,
    int_tuple,
)
from jaxrnn.cells._step import check_step_carry


def normalised(value: int | tuple[int, ...]) -> tuple[int, ...]:
    """A size field (kernel_size, strides, dilation_rate) as the cell's
    `__post_init__` leaves it: a tuple of `rank` ints."""
    assert isinstance(value, tuple)  # normalised in __post_init__
    return value


class ConvFrames:
    """The frames of a gated convolutional cell: its sizes normalised,
    frame shapes split and described, the state's shape, the convolution
    over frames with any leading axes, the checks of params and of a step's
    frame and carry, and the per-gate dropout masks. A mixin of
    `ConvLSTMCell`, which declares the fields (frozen dataclass fields,
    normalised by `_normalise_frames` in its ``__post_init__``)."""

    rank: int
    filters: int
    kernel_size: int | tuple[int, ...]
    strides: int | tuple[int, ...]
    padding: str
    data_format: str | None
    dilation_rate: int | tuple[int, ...]
    spatial_shape: tuple[int, ...] | None
    precision: Any
    gates: int
    use_bias: bool
    dropout: float
    recurrent_dropout: float

    if TYPE_CHECKING:

        @property
        def state_size(self) -> list[int]: ...

        def param_shapes(
            self, input_dim: Any
        ) -> dict[str, tuple[int, ...]]: ...

    def _normalise_frames(self) -> None:
        """Keras' normal form of the fields: sizes as tuples of `rank`
        ints, padding in lower case, data_format None as
        'channels_last'."""
        if self.rank not in (1, 2, 3):
            raise ValueError(f"`rank` must be 1, 2 or 3, got {self.rank!r}.")
        values = {
            "kernel_size": int_tuple(
                "kernel_size", self.kernel_size, self.rank
            ),
            "strides": int_tuple("strides", self.strides, self.rank),
            "dilation_rate": int_tuple(
                "dilation_rate", self.dilation_rate, self.rank
            ),
            "padding": (
                self.padding.lower()
                if isinstance(self.padding, str)
                else self.padding
            ),
            "data_format": self.data_format or "channels_last",
        }
        if self.spatial_shape is not None:
            values["spatial_shape"] = int_tuple(
                "spatial_shape", self.spatial_shape, self.rank
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)  # a frozen dataclass

    def _check_frames(self) -> None:
        check_one_of("padding", self.padding, PADDINGS)
        check_one_of("data_format", self.data_format, DATA_FORMATS)
        if (
            max(normalised(self.strides)) > 1
            and max(normalised(self.dilation_rate)) > 1
        ):
            raise ValueError(
                "`strides` > 1 and `dilation_rate` > 1 exclude each other, got "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}."
            )

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else -(self.rank + 1)

    def _frame(
        self, spatial: tuple[Any, ...], channels: Any
    ) -> tuple[Any, ...]:
        if self.data_format == "channels_last":
            return (*spatial, channels)
        return (channels, *spatial)

    def _describe_frame(self) -> str:
        letters = (
            ("*S", "C") if self.data_format == "channels_last" else ("C", "*S")
        )
        return f"({', '.join(letters)})"

    def _split_frame(
        self, input_dim: Any
    ) -> tuple[tuple[int, ...] | None, int]:
        """(spatial size or None, channels) from C or a frame shape."""
        if isinstance(input_dim, numbers.Integral) and not isinstance(
            input_dim, bool
        ):
            check_positive_int("input_dim", input_dim)
            return self.spatial_shape, int(input_dim)
        return self._split_frame_shape(input_dim)

    def _split_frame_shape(
        self, input_dim: Any
    ) -> tuple[tuple[int, ...], int]:
        """(spatial size, channels) from a frame shape, checked."""
        frame = tuple(input_dim) if isinstance(input_dim, Sequence) else None
        if frame is None or len(frame) != self.rank + 1:
            raise ValueError(
                f"{type(self).__name__} takes frames of shape "
                f"{self._describe_frame()} with {self.rank} spatial axes "
                f"({self.rank + 1} axes in all), got {input_dim!r}."
            )
        if self.data_format == "channels_last":
            spatial, channels = frame[:-1], frame[-1]
        else:
            spatial, channels = frame[1:], frame[0]
        check_positive_int("input channels C", channels)
        spatial = int_tuple("the frames' spatial size", spatial, self.rank)
        if self.spatial_shape is not None and spatial != self.spatial_shape:
            raise ValueError(
                f"{type(self).__name__} was built with spatial_shape="
                f"{self.spatial_shape}, got frames of spatial size {spatial}."
            )
        self.output_spatial_shape(spatial)  # rejects frames too small
        return spatial, int(channels)

    def output_spatial_shape(
        self, spatial_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        """S', the state's spatial size for frames of spatial size S.

        Keras' ``compute_conv_output_shape``: ``ceil(S / strides)`` with
        'same' padding; ``floor((S - dilation * (k - 1) - 1) / strides) + 1``
        with 'valid'. None stays None.

        Raises:
          ValueError: `spatial_shape` has not `rank` sizes, or 'valid'
            padding leaves no output (frames too small).

        Example:
          >>> from jaxrnn import ConvLSTM2DCell
          >>> ConvLSTM2DCell(4, 3, strides=2).output_spatial_shape((9, 8))
          (4, 3)
        """
        if len(spatial_shape) != self.rank:
            raise ValueError(
                f"`spatial_shape` must have {self.rank} sizes, "
                f"got {tuple(spatial_shape)}."
            )
        out = conv_output_size(
            spatial_shape,
            normalised(self.kernel_size),
            normalised(self.strides),
            normalised(self.dilation_rate),
            self.padding,
        )
        if any(n is not None and n <= 0 for n in out):
            raise ValueError(
                f"Frames of spatial size {tuple(spatial_shape)} are too small "
                f"for kernel_size={self.kernel_size}, dilation_rate="
                f"{self.dilation_rate}, strides={self.strides} with "
                f"padding='valid': the output size would be {out}."
            )
        return out

    def state_shape(
        self, spatial_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        """The shape of h (and c) for one example with frames of spatial
        size S: `(*S', F)`, channels_first `(F, *S')`; None stays None."""
        return self._frame(
            self.output_spatial_shape(spatial_shape), self.filters
        )

    def _conv(
        self,
        x: jax.Array,
        kernel: jax.Array,
        *,
        groups: int,
        recurrent: bool = False,
    ) -> jax.Array:
        """Convolves the frames of x (..., frame), any leading axes: the
        input convolution (the cell's strides, padding and dilation), or
        with `recurrent` the state's (stride 1, 'same' padding, no
        dilation, so the state keeps its size)."""
        ones = (1,) * self.rank
        return convolve_frames(
            x,
            kernel,
            rank=self.rank,
            channels_first=self.data_format == "channels_first",
            strides=ones if recurrent else normalised(self.strides),
            padding="same" if recurrent else self.padding,
            dilation=ones if recurrent else normalised(self.dilation_rate),
            groups=groups,
            precision=self.precision,
        )

    def check_params(self, params: Any, input_dim: Any) -> None:
        """Raises if `params` lacks an array or has one of the wrong shape
        (a kernel for another channel count included), or if frames of
        shape `input_dim` do not fit the cell."""
        expected = self.param_shapes(input_dim)
        kernel = params.get("kernel") if isinstance(params, Mapping) else None
        if (
            kernel is not None
            and np.ndim(kernel) == self.rank + 2
            and np.shape(kernel)[-2] != expected["kernel"][-2]
        ):
            raise ValueError(
                f"{type(self).__name__} params['kernel'] {np.shape(kernel)} "
                f"is for frames with {np.shape(kernel)[-2]} input channels, "
                f"got frames with {expected['kernel'][-2]}."
            )
        check_params(type(self).__name__, params, expected)

    def _check_step_input(
        self, params: Any, carry: Any, x: jax.Array
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Checks a step's frame x `(..., *S, C)`, `params` against its
        channels and `carry` against the state for its spatial size;
        returns (x's batch axes, the frame's shape)."""
        check_floating("x", x)
        n = self.rank + 1
        if x.ndim < n:
            raise ValueError(
                f"`x` must have shape (..., {self._describe_frame()[1:-1]})"
                f" with {self.rank} spatial axes, got {x.shape}."
            )
        batch_shape, frame = x.shape[:-n], x.shape[-n:]
        self.check_params(params, frame)
        spatial, _ = self._split_frame_shape(frame)
        expected = jax.ShapeDtypeStruct(
            (*batch_shape, *self.state_shape(spatial)), x.dtype
        )
        check_step_carry(
            self, carry, x, batch_shape, (expected,) * len(self.state_size)
        )
        return batch_shape, frame

    def _per_gate(
        self, x: jax.Array, mask: jax.Array | None
    ) -> tuple[jax.Array, int]:
        """x, or one masked copy per gate side by side along the channels
        and the group count that keeps each copy to its gate's share of a
        kernel."""
        if mask is None:
            return x, 1
        tiled = jnp.concatenate([x] * self.gates, axis=self._channel_axis)
        return tiled * mask.astype(x.dtype), self.gates

    def dropout_masks(
        self,
        key: jax.Array | None,
        batch_shape: tuple[int, ...],
        input_dim: Any,
        *,
        training: bool,
        dtype: Any = jnp.float32,
    ) -> DropoutMasks | None:
        """Draws the masks one sequence shares at every step (Keras' rule:
        one mask per gate, each of the frame's full shape).

        Args:
          key: PRNG key (needed only when dropout is active).
          batch_shape: the batch axes, e.g. (B,).
          input_dim: the frame shape `(*S, C)`, or C for a cell with a
            `spatial_shape`.
          training: dropout is active only in training.
          dtype: the masks' dtype.

        Returns:
          None outside training or when both rates are zero; else
          ``DropoutMasks(inputs, recurrent)`` with inputs
          `(*batch_shape, *S, G*C)` and recurrent `(*batch_shape, *S', G*F)`
          for G gates, their masks side by side along the channels (in the
          gates' order; channels_first: on the channel axis), scaled by
          1 / (1 - rate).

        Raises:
          ValueError: dropout is asked for in training but `key` is None.
        """
        key = dropout_key(self, key, training)
        if key is None:
            return None
        spatial, channels = self._split_frame(input_dim)
        if spatial is None:
            raise ValueError(
                f"{type(self).__name__}.dropout_masks needs the "
                "frame shape (*S, C) or a cell with "
                "`spatial_shape`; got C alone."
            )
        state = self.output_spatial_shape(spatial)
        return draw_masks(  # the gates' masks side by side
            self,
            key,
            (*batch_shape, *self._frame(spatial, self.gates * channels)),
            (*batch_shape, *self._frame(state, self.gates * self.filters)),
            dtype,
        )
