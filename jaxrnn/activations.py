"""Keras activation names mapped to `jax.nn` functions.

Keras' defaults are kept where they differ from JAX's (``gelu`` is exact,
``leaky_relu`` has slope 0.2), so a Keras model means the same thing here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]
ActivationLike = str | Activation | None


def linear(x: jax.Array) -> jax.Array:
    """Identity activation (Keras' ``'linear'``, also what ``None`` means).

    Example:
        >>> import jax.numpy as jnp
        >>> linear(jnp.array([-1.0, 2.0]))
        Array([-1.,  2.], dtype=float32)
    """
    return x


def exponential(x: jax.Array) -> jax.Array:
    """``exp(x)`` (Keras' ``'exponential'``), elementwise.

    Example:
        >>> import jax.numpy as jnp
        >>> exponential(jnp.array([0.0]))
        Array([1.], dtype=float32)
    """
    return jnp.exp(x)


def hard_tanh(x: jax.Array) -> jax.Array:
    """``clip(x, -1, 1)`` (Keras' ``'hard_tanh'``), elementwise.

    Example:
        >>> import jax.numpy as jnp
        >>> hard_tanh(jnp.array([-3.0, 0.5, 3.0]))
        Array([-1. ,  0.5,  1. ], dtype=float32)
    """
    return jnp.clip(x, -1, 1)


def tanh_shrink(x: jax.Array) -> jax.Array:
    """``x - tanh(x)`` (Keras' ``'tanh_shrink'``), elementwise.

    Example:
        >>> import jax.numpy as jnp
        >>> tanh_shrink(jnp.array([0.0]))
        Array([0.], dtype=float32)
    """
    return x - jnp.tanh(x)


_BY_NAME: dict[str, Activation] = {
    "linear": linear,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    # Keras' leaky_relu default slope is 0.2; jax.nn's is 0.01.
    "leaky_relu": functools.partial(jax.nn.leaky_relu, negative_slope=0.2),
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "celu": jax.nn.celu,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
    "log_sigmoid": jax.nn.log_sigmoid,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "hard_silu": jax.nn.hard_silu,
    "hard_swish": jax.nn.hard_silu,
    # Keras' gelu is the exact erf form unless asked otherwise.
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "mish": jax.nn.mish,
    "exponential": exponential,
    "hard_tanh": hard_tanh,
    "tanh_shrink": tanh_shrink,
}


def names() -> list[str]:
    """Returns the activation names `get` accepts, sorted.

    Example:
        >>> "hard_sigmoid" in names(), len(names()) > 20
        (True, True)
    """
    return sorted(_BY_NAME)


def get(identifier: ActivationLike) -> Activation:
    """Resolves a Keras activation name, a callable or ``None`` to a function.

    Args:
        identifier: a Keras name such as ``'tanh'`` or ``'hard_sigmoid'``, any
            callable ``f(x) -> y`` applied elementwise, or ``None`` for linear.

    Returns:
        The activation function.

    Raises:
        ValueError: for an unknown name.
        TypeError: for anything that is neither a string, a callable nor None.

    Example:
        >>> import jax.numpy as jnp
        >>> get("relu")(jnp.array([-1.0, 2.0]))
        Array([0., 2.], dtype=float32)
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(
                f"Unknown activation {identifier!r}; expected one of {names()} "
                "or a callable."
            ) from None
    if callable(identifier):
        return identifier
    raise TypeError(
        "An activation must be a Keras name, a callable or None, got "
        f"{type(identifier).__name__}."
    )
