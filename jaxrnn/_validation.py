"""Argument and shape checks shared by the public entry points.

Checks run once, at trace time, at the public boundary; private helpers trust
their inputs. Messages name the argument, what was expected and what came.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def describe(value: Any) -> str:
    """`value` for an error message: an array by its type, shape and dtype
    (its repr could run to pages), anything else by its repr and type."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return (
            f"{type(value).__name__} of shape {tuple(np.shape(value))} "
            f"and dtype {value.dtype}"
        )
    if isinstance(value, (list, tuple)) and (
        len(value) > 8
        or any(
            hasattr(v, "shape") or isinstance(v, (list, tuple)) for v in value
        )
    ):
        return f"{type(value).__name__} of length {len(value)}"
    return f"{value!r} of type {type(value).__name__}"


def check_prng_key(name: str, value: Any) -> None:
    """Raises TypeError unless `value` is a PRNG key: a typed key
    (`jax.random.key`) or a legacy uint32 (2,) key (`jax.random.PRNGKey`)."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and (
        jnp.issubdtype(dtype, jax.dtypes.prng_key)
        or (dtype == np.uint32 and np.shape(value)[-1:] == (2,))
    ):
        return
    raise TypeError(
        f"`{name}` must be a PRNG key such as "
        f"jax.random.key(0), got {describe(value)}."
    )


def check_positive_int(name: str, value: Any) -> None:
    """Raises unless `value` is a positive Python or NumPy integer (not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be a positive int, got {describe(value)}."
        )
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive int, got {value}.")


def check_heads(units: Any, num_heads: Any) -> None:
    """Raises unless `units` and `num_heads` are positive ints and
    `num_heads` divides `units` (a head-wise cell's heads of equal size)."""
    check_positive_int("units", units)
    check_positive_int("num_heads", num_heads)
    if units % num_heads:
        raise ValueError(
            f"`num_heads` must divide `units`, got units={units}, "
            f"num_heads={num_heads}."
        )


def batch_shape_of(batch_shape: Any) -> tuple[int, ...]:
    """`initial_carry`'s batch shape as a tuple: an int B stands for (B,).

    Raises:
      TypeError: `batch_shape` is neither an int nor a sequence of ints.
      ValueError: a size is negative.
    """
    sizes = (
        (batch_shape,)
        if isinstance(batch_shape, numbers.Integral)
        else batch_shape
    )
    if (
        isinstance(sizes, (str, bytes))
        or not isinstance(sizes, Sequence)
        or any(
            isinstance(n, bool) or not isinstance(n, numbers.Integral)
            for n in sizes
        )
    ):
        raise TypeError(
            "`batch_shape` must be an int B or a tuple of ints "
            f"such as (B,), got {describe(batch_shape)}."
        )
    if any(n < 0 for n in sizes):
        raise ValueError(
            f"`batch_shape` must hold sizes >= 0, got {tuple(sizes)}."
        )
    return tuple(int(n) for n in sizes)


def check_rate(name: str, value: Any) -> None:
    """Raises unless `value` is a real number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a float in [0, 1), got {describe(value)}."
        )
    # numbers.Real compares with floats, though its stubs omit it.
    if not 0.0 <= value < 1.0:  # pyright: ignore[reportOperatorIssue]
        raise ValueError(f"`{name}` must be in [0, 1), got {value}.")


def check_bool(name: str, value: Any) -> None:
    """Raises unless `value` is a Python bool."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r}.")


def check_dtype_fields(owner: Any, names: Sequence[str]) -> None:
    """Raises TypeError unless each of `owner`'s fields `names` (a cell's
    ``dtype``, ``param_dtype``) is None or a floating dtype."""
    for name in names:
        value = getattr(owner, name)
        if value is not None and not jnp.issubdtype(value, jnp.floating):
            raise TypeError(
                f"`{name}` must be a floating dtype, got {value!r}."
            )


def check_one_of(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raises ValueError unless `value` is one of `allowed`."""
    # An array has no single truth value: refuse it by name, not by numpy.
    if hasattr(value, "shape") or value not in allowed:
        got = describe(value) if hasattr(value, "shape") else repr(value)
        raise ValueError(
            f"`{name}` must be one of {list(allowed)}, got {got}."
        )


def check_shape(
    name: str, value: Any, expected: tuple[int | None, ...]
) -> None:
    """Raises ValueError unless value's shape matches `expected` (None: any)."""
    got = tuple(np.shape(value))
    fits = len(got) == len(expected) and all(
        want is None or want == have for want, have in zip(expected, got)
    )
    if not fits:
        want = ", ".join("*" if w is None else str(w) for w in expected)
        want = f"({want},)" if len(expected) == 1 else f"({want})"
        raise ValueError(f"`{name}` must have shape {want}, got {got}.")


def check_floating(name: str, value: Any) -> None:
    """Raises TypeError unless `value` is an array of a floating dtype."""
    if value is None or isinstance(value, (str, bytes, type, np.dtype)):
        # jnp.result_type reads dtype names and types as dtypes.
        raise TypeError(
            f"`{name}` must have a floating dtype, got "
            f"{type(value).__name__} {value!r}."
        )
    dtype = (
        jnp.result_type(value) if not hasattr(value, "dtype") else value.dtype
    )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`{name}` must have a floating dtype, got {dtype}.")


def check_params(
    owner: str, params: Any, expected: Mapping[str, tuple[int, ...]]
) -> None:
    """Checks a params dict has exactly the arrays `expected` names and
    shapes, each of a real floating dtype (an int, bool or complex kernel
    would run, but silently promote or cast the whole step).

    Args:
      owner: who the params belong to, for the message (e.g. ``'LSTMCell'``).
      params: the dict to check.
      expected: array name -> expected shape.
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{owner} params must be a dict with keys "
            f"{sorted(expected)}, got {type(params).__name__}."
        )
    missing = [k for k in expected if k not in params]
    if missing:
        raise ValueError(
            f"{owner} params are missing {missing}; expected keys "
            f"{sorted(expected)}, got {sorted(params)}."
        )
    extra = [k for k in params if k not in expected]
    if extra:
        raise ValueError(
            f"{owner} params have unexpected keys {extra}; "
            f"expected {sorted(expected)}."
        )
    for key, shape in expected.items():
        got = tuple(np.shape(params[key]))
        if got != tuple(shape):
            raise ValueError(
                f"{owner} params[{key!r}] must have shape "
                f"{tuple(shape)}, got {got}."
            )
        dtype = _dtype_of(params[key])
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{owner} params[{key!r}] must have a floating "
                f"dtype (float32, bfloat16, ...), got {dtype}; "
                "cast it with .astype(jnp.float32)."
            )


def _dtype_of(value: Any) -> Any:
    """The dtype of an array, a ShapeDtypeStruct or a Python number or list
    (None for something that has none)."""
    if hasattr(value, "dtype"):
        return value.dtype
    try:
        return np.asarray(value).dtype
    except (TypeError, ValueError):
        return None


def check_tree_like(name: str, value: Any, reference: Any) -> None:
    """Checks `value` has the pytree structure and leaf shapes of `reference`."""
    got_def = jax.tree.structure(value)
    want_def = jax.tree.structure(reference)
    if got_def != want_def:
        raise ValueError(
            f"`{name}` must have structure {want_def}, got {got_def}."
        )
    for i, (got, want) in enumerate(
        zip(jax.tree.leaves(value), jax.tree.leaves(reference))
    ):
        if tuple(np.shape(got)) != tuple(np.shape(want)):
            raise ValueError(
                f"`{name}` leaf {i} must have shape "
                f"{tuple(np.shape(want))}, "
                f"got {tuple(np.shape(got))}."
            )
