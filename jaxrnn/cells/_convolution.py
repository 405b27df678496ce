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
