"""Convolutions over frames, for the ConvLSTM cells and the convolutional
layers: Keras' sizes (an int or one per spatial axis), the output size of
a convolution, and the convolution itself over frames with any leading
axes, channels last or first.

On CPU the convolution's kernel gradient is a GEMM over patches: XLA:CPU
runs the native one inside a loop on a slow path
(`_conv_with_matmul_gradient`).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxrnn._validation import check_one_of, check_positive_int

PADDINGS = ("valid", "same")
DATA_FORMATS = ("channels_last", "channels_first")
_SPATIAL_LETTERS = {1: "W", 2: "HW", 3: "DHW"}


def _convolve(frames, kernel, **config):
    """`(N, *S, G*C)` frames, `(*k, C, O)` kernel -> `(N, *S', O)`."""
    if jax.default_backend() == "cpu":
        return _conv_with_matmul_gradient(**config)(frames, kernel)
    return _conv_general(frames, kernel, **config)


def _dimension_numbers(rank: int) -> tuple[str, str, str]:
    letters = _SPATIAL_LETTERS[rank]
    return "N" + letters + "C", letters + "IO", "N" + letters + "C"


def _conv_general(
    frames, kernel, *, strides, padding, dilation, groups, precision
):
    """`(N, *S, G*C)` frames, `(*k, C, O)` kernel -> `(N, *S', O)`."""
    return lax.conv_general_dilated(
        frames,
        kernel,
        window_strides=strides,
        padding=padding,
        rhs_dilation=dilation,
        dimension_numbers=_dimension_numbers(kernel.ndim - 2),
        feature_group_count=groups,
        precision=precision,
    )


def _conv_as_matmul(
    frames, kernel, *, strides, padding, dilation, groups, precision
):
    """The same convolution as `_conv_general`, as patches @ kernel."""
    window, out = kernel.shape[:-2], kernel.shape[-1]
    # Extracting patches is a convolution with a 0/1 kernel: exact only at
    # the highest precision.
    patches = lax.conv_general_dilated_patches(
        frames,
        window,
        strides,
        padding,
        rhs_dilation=dilation,
        dimension_numbers=_dimension_numbers(len(window)),
        precision=lax.Precision.HIGHEST,
    )
    # Patch features run (input channel, *window), the channel slowest; a
    # group g sees input channels [g*C, (g+1)*C) and makes outputs
    # [g*O/G, (g+1)*O/G) (lax's feature_group_count).
    patches = patches.reshape(*patches.shape[:-1], groups, -1)
    matrix = jnp.moveaxis(kernel, -2, 0).reshape(-1, groups, out // groups)
    out_frames = jnp.einsum(
        "...gk,kgo->...go", patches, matrix, precision=precision
    )
    return out_frames.reshape(*out_frames.shape[:-2], out)


@functools.cache
def _conv_with_matmul_gradient(**config):
    """`_conv_general` whose kernel tangent is patches @ d_kernel.

    XLA:CPU runs the kernel-gradient convolution inside a while loop (the
    backward pass of lax.scan) on a slow generic path: a ConvLSTM2D's
    gradient took 2.6 s per batch where the unrolled loop took 0.07 s
    (16 frames of 16x16x16, 16 filters, 9 steps). With the kernel's tangent
    written as patches times a matrix, its transpose, the kernel gradient,
    is a GEMM (0.2 s); the forward pass keeps the native convolution. On
    accelerators the native convolution's gradient is kept: it needs no
    patch copies.
    """

    @jax.custom_jvp
    def conv(frames, kernel):
        return _conv_general(frames, kernel, **config)

    @functools.partial(conv.defjvp, symbolic_zeros=True)
    def conv_jvp(primals, tangents):
        frames, kernel = primals
        d_frames, d_kernel = tangents
        out = conv(frames, kernel)
        tangent = jnp.zeros_like(out)
        if not isinstance(d_frames, SymbolicZero):
            tangent = tangent + _conv_general(d_frames, kernel, **config)
        if not isinstance(d_kernel, SymbolicZero):
            tangent = tangent + _conv_as_matmul(frames, d_kernel, **config)
        return out, tangent

    return conv


def int_tuple(name: str, value: Any, rank: int) -> tuple[int, ...]:
    """Keras' ``standardize_tuple``: an int or `rank` positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,) * rank
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or len(value) != rank
        or any(
            isinstance(v, bool)
            or not isinstance(v, numbers.Integral)
            or v <= 0
            for v in value
        )
    ):
        raise ValueError(
            f"`{name}` must be a positive int or a tuple of "
            f"{rank} positive ints, got {value!r}."
        )
    return tuple(int(v) for v in value)


def conv_output_size(
    spatial_shape: Sequence[int | None],
    kernel_size: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: str,
) -> tuple[int | None, ...]:
    """S', a convolution's output size for frames of spatial size S, by
    Keras' ``compute_conv_output_shape``: ``ceil(S / strides)`` with
    'same' padding, ``floor((S - dilation * (k - 1) - 1) / strides) + 1``
    with 'valid' (zero or less where the frames are too small). None
    stays None."""
    out = []
    for size, k, s, d in zip(spatial_shape, kernel_size, strides, dilation):
        if size is None:
            out.append(None)
        elif padding == "same":
            out.append((size - 1) // s + 1)
        else:
            out.append((size - d * (k - 1) - 1) // s + 1)
    return tuple(out)


def convolve_frames(
    x: jax.Array,
    kernel: jax.Array,
    *,
    rank: int,
    channels_first: bool,
    strides: tuple[int, ...],
    padding: str,
    dilation: tuple[int, ...],
    groups: int,
    precision: Any,
) -> jax.Array:
    """Convolves the frames of x, `(..., *S, C)` (channels first:
    `(..., C, *S)`) with any leading axes, by a `(*k, C / groups, O)`
    kernel; returns `(..., *S', O)` (channels first: `(..., O, *S')`)."""
    lead = x.shape[: x.ndim - rank - 1]
    frames = x.reshape((math.prod(lead),) + x.shape[len(lead) :])
    if channels_first:
        frames = jnp.moveaxis(frames, 1, -1)
    out = _convolve(
        frames,
        kernel.astype(x.dtype),
        strides=tuple(strides),
        padding=padding.upper(),
        dilation=tuple(dilation),
        groups=groups,
        precision=precision,
    )
    if channels_first:
        out = jnp.moveaxis(out, -1, 1)
    return out.reshape(lead + out.shape[1:])


def normalised(value: int | tuple[int, ...]) -> tuple[int, ...]:
    """A size field (kernel_size, strides, dilation_rate) as the cell's
    `__post_init__` leaves it: a tuple of `rank` ints."""
    assert isinstance(value, tuple)  # normalised in __post_init__
    return value


class ConvFrames:
    """The frames and the input convolution of a convolutional cell: its
    sizes normalised, frame shapes split and described, the state's shape,
    the convolution over frames with any leading axes. A mixin of
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
