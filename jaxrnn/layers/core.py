"""Keras' core layers for models around a recurrent layer: `Embedding`
and `Dense`.

Like every layer here they have ``init(key, input_shape)``, a pure
``layer(params, x, *, mask, key, training)``, ``output_shape`` and
``param_count``. This module also exports, under the path they have
always had, `PassMask` (from `_base`), `TimeDistributed` and `Dropout`
(from modules of their own).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrnn import activations, initializers
from jaxrnn._validation import check_floating, check_positive_int
from jaxrnn.activations import ActivationLike
from jaxrnn.initializers import InitializerLike
from jaxrnn.layers._base import PassMask
from jaxrnn.layers._common import shape_tuple
from jaxrnn.layers.dropout import Dropout
from jaxrnn.layers.time_distributed import TimeDistributed
from jaxrnn.typing import Shape

__all__ = ["Dense", "Dropout", "Embedding", "PassMask", "TimeDistributed"]


def _last_dim(name: str, input_shape: Shape) -> int:
    shape = shape_tuple(input_shape, "(None, D)", "(None, {})")
    if not shape or not isinstance(shape[-1], (int, np.integer)):
        raise ValueError(
            f"{name} needs `input_shape` ending with a known "
            f"feature size, got {shape}."
        )
    return int(shape[-1])


@dataclasses.dataclass(frozen=True)
class Embedding(PassMask):
    """Keras' ``Embedding``: integer ids (...,) -> vectors (..., E).

    Args:
      input_dim: vocabulary size V.
      output_dim: embedding size E.
      mask_zero: id 0 is padding: `compute_mask` returns ``ids != 0`` for the
        next layers (a `Sequential` passes it on, as Keras does).
      embeddings_initializer: Keras' default draws from U(-0.05, 0.05).
      param_dtype: dtype of the table `init` creates.

    Params: ``{'embeddings': (V, E)}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = Embedding(10, 3, mask_zero=True)
      >>> params = layer.init(jax.random.key(0), (None, 4))
      >>> ids = jnp.array([[4, 2, 0, 0]])
      >>> layer(params, ids).shape, layer.compute_mask(ids, None).tolist()
      ((1, 4, 3), [[True, True, False, False]])
    """

    input_dim: int
    output_dim: int
    mask_zero: bool = False
    embeddings_initializer: InitializerLike = "random_uniform"
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_positive_int("input_dim", self.input_dim)
        check_positive_int("output_dim", self.output_dim)
        initializers.get(self.embeddings_initializer)

    def init(
        self, key: jax.Array, input_shape: Shape = ()
    ) -> dict[str, jax.Array]:
        """Creates the table.

        Args:
          key: PRNG key.
          input_shape: the ids' shape, e.g. (None, None); not needed.

        Returns:
          ``{'embeddings': (V, E)}``.
        """
        return {
            "embeddings": initializers.initialize(
                self.embeddings_initializer,
                key,
                (self.input_dim, self.output_dim),
                self.param_dtype,
            )
        }

    def __call__(
        self, params, ids: jax.Array, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Looks up `ids`.

        Args:
          params: ``{'embeddings': (V, E)}`` from `init`.
          ids: (...,) ids in [0, V), e.g. (B, T): int32 or int64 as they
            are; other integer, bool or float ids are cast to int32 as Keras
            does (floats truncate toward zero: 2.7 looks up row 2).
          mask: ignored; the mask for the next layer comes from
            `compute_mask`.
          key: ignored (every layer takes it).
          training: ignored (every layer takes it).

        Returns:
          (..., E) vectors.

        Raises:
          TypeError: `ids` are neither real numbers nor bools (complex, say).
          ValueError: the table is not (V, E).
        """
        ids = jnp.asarray(ids)
        if ids.dtype not in (jnp.int32, jnp.int64):
            if not (
                jnp.issubdtype(ids.dtype, jnp.integer)
                or jnp.issubdtype(ids.dtype, jnp.floating)
                or ids.dtype == jnp.bool_
            ):
                raise TypeError(
                    "Embedding expects integer ids (or floats, "
                    f"cast to int32 as Keras does), got {ids.dtype}."
                )
            # keras/src/layers/core/embedding.py casts any other dtype to int32.
            ids = ids.astype(jnp.int32)
        table = params["embeddings"]
        if table.shape != (self.input_dim, self.output_dim):
            raise ValueError(
                f"Embedding params['embeddings'] must have shape "
                f"{(self.input_dim, self.output_dim)}, got "
                f"{table.shape}."
            )
        return jnp.take(table, ids, axis=0)

    def compute_mask(
        self, inputs: ArrayLike, mask: ArrayLike | None
    ) -> jax.Array | None:
        """The mask for the next layer.

        Args:
          inputs: the ids, (B, T).
          mask: the incoming mask, or None.

        Returns:
          ``inputs != 0`` (B, T) with ``mask_zero``, else `mask`.
        """
        if not self.mask_zero:
            return None if mask is None else jnp.asarray(mask)
        return jnp.asarray(inputs) != 0

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """(..., E) for ids of shape `input_shape` (...,)."""
        return tuple(input_shape) + (self.output_dim,)


@dataclasses.dataclass(frozen=True)
class Dense(PassMask):
    """Keras' ``Dense`` on the last axis of any rank (time included).

    Args:
      units: output size U.
      activation: Keras name, callable or None.
      use_bias: whether params hold ``bias`` (U,).
      kernel_initializer: for ``kernel`` (D, U); Keras name or callable.
      bias_initializer: for ``bias`` (U,).
      param_dtype: dtype of the arrays `init` creates.

    Params: ``{'kernel': (D, U), 'bias': (U,)}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = Dense(4, activation="softmax")
      >>> params = layer.init(jax.random.key(0), (None, 7, 3))
      >>> layer(params, jnp.ones((2, 7, 3))).shape
      (2, 7, 4)
    """

    units: int
    activation: ActivationLike = None
    use_bias: bool = True
    kernel_initializer: InitializerLike = "glorot_uniform"
    bias_initializer: InitializerLike = "zeros"
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_positive_int("units", self.units)
        activations.get(self.activation)
        initializers.get(self.kernel_initializer)
        initializers.get(self.bias_initializer)

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Creates the params for inputs of `input_shape` (..., D).

        Args:
          key: PRNG key.
          input_shape: any shape ending with a known D, e.g. (None, T, D).

        Returns:
          ``{'kernel': (D, U), 'bias': (U,)}`` (no bias without `use_bias`).
        """
        features = _last_dim("Dense", input_shape)
        k_kernel, k_bias = jax.random.split(key)
        params = {
            "kernel": initializers.initialize(
                self.kernel_initializer,
                k_kernel,
                (features, self.units),
                self.param_dtype,
            )
        }
        if self.use_bias:
            params["bias"] = initializers.initialize(
                self.bias_initializer, k_bias, (self.units,), self.param_dtype
            )
        return params

    def __call__(
        self, params, x: ArrayLike, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Applies ``activation(x @ kernel + bias)`` on the last axis.

        Args:
          params: from `init`.
          x: (..., D) floating inputs, e.g. (B, T, D).
          mask: ignored (passed on by `compute_mask`).
          key: ignored (every layer takes it).
          training: ignored (every layer takes it).

        Returns:
          (..., U).
        """
        x = jnp.asarray(x)
        check_floating("inputs", x)
        kernel = params["kernel"]
        if x.shape[-1:] != kernel.shape[:1]:
            raise ValueError(
                f"Dense expects inputs (..., {kernel.shape[0]}) "
                f"for its kernel {kernel.shape}, got {x.shape}."
            )
        y = x @ kernel.astype(x.dtype)
        if self.use_bias:
            y = y + params["bias"].astype(x.dtype)
        return activations.get(self.activation)(y)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """(..., U) for inputs of shape `input_shape` (..., D)."""
        return tuple(input_shape)[:-1] + (self.units,)
