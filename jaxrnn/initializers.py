"""Keras initializer names mapped to `jax.nn.initializers`.

Each initializer is a function ``init(key, shape, dtype) -> array`` with the
same distribution as Keras' initializer of that name (Keras' fan conventions:
for a kernel of shape `(D, G*H)`, fan_in = D and `fan_out = G*H`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]
InitializerLike = str | Initializer


def _random_uniform(key, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    # Keras' RandomUniform defaults: minval=-0.05, maxval=0.05.
    return jax.random.uniform(key, shape, dtype, minval=-0.05, maxval=0.05)


def _identity(key, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    del key
    if len(shape) != 2:
        raise ValueError(f"'identity' needs a 2-D shape, got {tuple(shape)}.")
    return jnp.eye(*shape, dtype=dtype)


_BY_NAME: dict[str, Initializer] = {
    "glorot_uniform": jax.nn.initializers.glorot_uniform(),
    "glorot_normal": jax.nn.initializers.glorot_normal(),
    "he_uniform": jax.nn.initializers.he_uniform(),
    "he_normal": jax.nn.initializers.he_normal(),
    "lecun_uniform": jax.nn.initializers.lecun_uniform(),
    "lecun_normal": jax.nn.initializers.lecun_normal(),
    "orthogonal": jax.nn.initializers.orthogonal(),
    "zeros": jax.nn.initializers.zeros,
    "ones": jax.nn.initializers.ones,
    # Keras' RandomNormal and TruncatedNormal default to stddev 0.05.
    "random_normal": jax.nn.initializers.normal(0.05),
    "truncated_normal": jax.nn.initializers.truncated_normal(0.05),
    "random_uniform": _random_uniform,
    "identity": _identity,
}


def _snake(name: str) -> str:
    # Keras accepts class names too: 'GlorotUniform' == 'glorot_uniform'.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def names() -> list[str]:
    """Returns the initializer names `get` accepts (snake case), sorted.

    Example:
        >>> names()[:3]
        ['glorot_normal', 'glorot_uniform', 'he_normal']
    """
    return sorted(_BY_NAME)


def get(identifier: InitializerLike) -> Initializer:
    """Resolves a Keras initializer name or a callable to an initializer.

    Args:
        identifier: a Keras name (``'glorot_uniform'`` or ``'GlorotUniform'``,
            ``'orthogonal'``, ``'zeros'``, ...) or a callable
            ``init(key, shape, dtype) -> array`` such as any
            `jax.nn.initializers` function.

    Returns:
        The initializer.

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything that is neither a string nor a callable.

    Example:
        >>> import jax
        >>> get("zeros")(jax.random.key(0), (2,))
        Array([0., 0.], dtype=float32)
    """
    if isinstance(identifier, str):
        name = _snake(identifier)
        if name in _BY_NAME:
            return _BY_NAME[name]
        raise ValueError(
            f"Unknown initializer {identifier!r}; expected one of {names()} or a "
            "callable init(key, shape, dtype)."
        )
    if callable(identifier):
        return identifier
    raise TypeError(
        "An initializer must be a Keras name or a callable init(key, shape, "
        f"dtype), got {type(identifier).__name__}."
    )


def initialize(
    identifier: InitializerLike,
    key: jax.Array,
    shape: Sequence[int],
    dtype: Any,
) -> jax.Array:
    """Creates one array with the named initializer.

    Sampling happens in at least float32 and is then cast, so half-precision
    params get the same distribution (and QR-based 'orthogonal' works).

    Args:
        identifier: a Keras initializer name or a callable, as `get` takes.
        key: PRNG key.
        shape: the array's shape, e.g. `(D, G*H)` for a kernel.
        dtype: the array's dtype.

    Returns:
        An array of `shape` and `dtype`.

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything that is neither a string nor a callable.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> w = initialize("orthogonal", jax.random.key(0), (4, 4), jnp.bfloat16)
        >>> w.dtype, w.shape
        (dtype(bfloat16), (4, 4))
    """
    shape, dtype = tuple(shape), jnp.dtype(dtype)
    if isinstance(identifier, str) or (
        isinstance(identifier, UnitForgetBias)
        and isinstance(identifier.base, str)
    ):
        # One compiled program per array: a built-in initializer's few
        # operations, run one by one, compile one by one at twice the time
        # (docs/performance.md). A callable of the user's runs as it is.
        return _create_jit(key, get(identifier), shape, dtype)
    return _create(key, get(identifier), shape, dtype)


def _create(key: jax.Array, initializer: Initializer, shape, dtype):
    wide = dtype if jnp.dtype(dtype).itemsize >= 4 else jnp.float32
    return initializer(key, shape, wide).astype(dtype)


_create_jit = jax.jit(_create, static_argnums=(1, 2, 3))


@dataclasses.dataclass(frozen=True)
class UnitForgetBias:
    """Keras' ``unit_forget_bias``: a (4 * units,) bias for gates i, f, c, o
    whose f slice is ones and whose others come from `base`.

    Example:
        >>> import jax
        >>> UnitForgetBias("zeros", 2)(jax.random.key(0), (8,), "float32")
        Array([0., 0., 1., 1., 0., 0., 0., 0.], dtype=float32)
    """

    base: InitializerLike
    units: int

    def __call__(self, key: jax.Array, shape: Any, dtype: Any) -> jax.Array:
        del shape
        k_input, k_rest = jax.random.split(key)
        units = self.units
        return jnp.concatenate(
            [
                initialize(self.base, k_input, (units,), dtype),
                jnp.ones((units,), dtype),
                initialize(self.base, k_rest, (2 * units,), dtype),
            ]
        )
