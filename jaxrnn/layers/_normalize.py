"""What Keras' normalization layers share: the normalising step, the axes.

`normalize` computes ``(x - mean) / sqrt(variance + epsilon) * gamma +
beta`` in Keras' order of operations, so results agree with Keras to
rounding, and `batch_moments` the (masked) batch statistics it takes;
`resolve_axes` and `axis_sizes` read Keras' ``axis`` argument (negative
axes, several axes in Keras' weight order); `compute_dtype` is Keras' rule
of normalising half precision in float32. `BatchNormalization` and
`LayerNormalization` use them, with the checks of `epsilon` and of params
here too.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn._validation import describe
from jaxrnn.layers._common import shape_tuple
from jaxrnn.typing import Shape

# Keras adds its backend epsilon to masked counts to avoid 0 / 0.
_COUNT_EPSILON = 1e-7


def check_epsilon(epsilon: Any) -> None:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(
            f"`epsilon` must be a float >= 0, got {describe(epsilon)}."
        )
    # numbers.Real declares only < and <= (the checker's complaint), but
    # every real type has >=, and `not >=` refuses NaN too.
    if not epsilon >= 0:  # pyright: ignore[reportOperatorIssue]
        raise ValueError(f"`epsilon` must be a float >= 0, got {epsilon}.")


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def resolve_axes(
    owner: str, axis: int | tuple[int, ...], ndim: int
) -> tuple[int, ...]:
    """`axis` as sorted non-negative axes of a rank-`ndim` input.

    `axis` is one int or a tuple of ints, as the layers' checks leave it.
    """
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{owner} `axis` {axis} is out of range for "
                f"inputs of rank {ndim}."
            )
    # Keras sorts the axes as written and lays gamma out in that order;
    # mixed signs sort differently from the axes' positions, so refuse them.
    resolved = [a % ndim for a in sorted(axes)]
    if len(set(resolved)) != len(resolved):
        raise ValueError(
            f"{owner} `axis` {axis} names an axis twice for "
            f"inputs of rank {ndim}."
        )
    if resolved != sorted(resolved):
        raise ValueError(
            f"{owner} `axis` {axis} mixes negative and non-negative axes: "
            f"Keras lays the weights out in the sorted order {sorted(axes)}, "
            f"not the axes' order {sorted(resolved)}; write all of them "
            f"non-negative, e.g. {tuple(sorted(resolved))}."
        )
    return tuple(resolved)


def axis_sizes(owner: str, input_shape: Shape, axis: Any) -> tuple[int, ...]:
    """The known sizes of `input_shape` at `axis`: the weights' shape."""
    shape = shape_tuple(input_shape, "(None, D)", "(None, {})")
    sizes = tuple(shape[a] for a in resolve_axes(owner, axis, len(shape)))
    if not all(is_int(s) for s in sizes):
        raise ValueError(
            f"{owner} needs `input_shape` with known sizes at "
            f"axis {axis}, got {shape}."
        )
    return tuple(int(s) for s in sizes)


def check_norm_params(
    owner: str, params: Any, names: Sequence[str], shape: tuple[int, ...]
) -> None:
    if not isinstance(params, Mapping) or set(params) != set(names):
        got = (
            sorted(params) if isinstance(params, Mapping) else describe(params)
        )
        raise ValueError(
            f"{owner} params must have keys {sorted(names)} (as "
            f"its `init` makes them), got {got}."
        )
    for name in names:
        if tuple(np.shape(params[name])) != shape:
            raise ValueError(
                f"{owner} params[{name!r}] must have shape "
                f"{shape} for these inputs, got "
                f"{tuple(np.shape(params[name]))}."
            )


def compute_dtype(x: jax.Array) -> jax.Array:
    # Keras normalises in at least float32: half precision overflows.
    return x.astype(jnp.float32) if x.dtype.itemsize < 4 else x


def normalize(x, mean, variance, gamma, beta, epsilon):
    # Keras' order of operations (keras/src/backend/jax/nn.py), so results
    # agree to rounding even where x - mean cancels.
    inv = jax.lax.rsqrt(variance + jnp.asarray(epsilon, x.dtype))
    if gamma is not None:
        inv = inv * gamma
    offset = -mean * inv
    if beta is not None:
        offset = offset + beta
    return x * inv + offset


def batch_moments(
    x: jax.Array, axis: int, mask: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    """The mean and variance of `x` over every axis but `axis`, each
    (C,); with a bool `mask` of one axis fewer, spread over x's last
    axis, over the valid entries only, as Keras' masked moments."""
    axes = tuple(a for a in range(x.ndim) if a != axis)
    if mask is None:
        return jnp.mean(x, axes), jnp.var(x, axes)
    # Keras spreads the mask over the last axis, whichever is `axis`.
    valid = jnp.broadcast_to(mask[..., None], x.shape)
    count = (
        jnp.sum(valid.astype(x.dtype), axes, keepdims=True) + _COUNT_EPSILON
    )
    mean = jnp.sum(jnp.where(valid, x, 0), axes, keepdims=True) / count
    variance = (
        jnp.sum(jnp.square(jnp.where(valid, x - mean, 0)), axes, keepdims=True)
        / count
    )
    return mean.reshape(-1), variance.reshape(-1)
