"""Companion layers for Keras-style models: Embedding, Dense, TimeDistributed,
Dropout. Same style as the recurrent layers: ``init(key, input_shape)``,
a pure ``layer(params, x, ...)``, ``output_shape`` and ``param_count``."""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import activations, initializers
from jaxrnn._validation import (
    check_floating,
    check_positive_int,
    check_rate,
    describe,
)
from jaxrnn.activations import ActivationLike
from jaxrnn.initializers import InitializerLike
from jaxrnn.layers.recurrent import _shape_tuple, count_params
from jaxrnn.typing import Shape


def _last_dim(name: str, input_shape: Shape) -> int:
    shape = _shape_tuple(input_shape, "(None, D)", "(None, {})")
    if not shape or not isinstance(shape[-1], (int, np.integer)):
        raise ValueError(
            f"{name} needs `input_shape` ending with a known "
            f"feature size, got {shape}."
        )
    return int(shape[-1])


class PassMask:
    """Keras' ``supports_masking``: the mask goes through unchanged."""

    def compute_mask(
        self, inputs: jax.Array, mask: jax.Array | None
    ) -> jax.Array | None:
        """The mask for the next layer: `mask` unchanged.

        Args:
          inputs: this layer's inputs (unused).
          mask: bool (B, T), or None.

        Returns:
          `mask`.
        """
        return mask

    def param_count(self, input_shape: Shape) -> int:
        """The number of parameters, as Keras' ``count_params``."""
        return count_params(self, input_shape)


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
        self, inputs: jax.Array, mask: jax.Array | None
    ) -> jax.Array | None:
        """The mask for the next layer.

        Args:
          inputs: the ids, (B, T).
          mask: the incoming mask, or None.

        Returns:
          ``inputs != 0`` (B, T) with ``mask_zero``, else `mask`.
        """
        if not self.mask_zero:
            return mask
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
        self, params, x: jax.Array, *, mask=None, key=None, training=False
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


def _takes_mask(layer: Any) -> bool:
    """Whether ``layer(...)`` names a `mask` parameter (Keras'
    ``_call_has_mask_arg``: a mere ``**kwargs`` does not count)."""
    from jaxrnn.layers.masking import DropsMask  # imports this module

    if isinstance(layer, DropsMask):  # Keras' Conv1D, pooling: no mask arg
        return False
    try:
        parameters = inspect.signature(layer).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return "mask" in parameters


def _check_step_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """`mask` as an array whose leading axes are the inputs' (B, T)."""
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"TimeDistributed `mask` must be a bool array, got {mask.dtype}."
        )
    if mask.ndim < 2 or mask.shape[:2] != shape[:2]:
        raise ValueError(
            f"TimeDistributed `mask` must have shape (B, T) or (B, T, ...) "
            f"with the inputs' (B, T) = {shape[:2]}, got {mask.shape} for "
            f"inputs {shape}."
        )
    return mask


@dataclasses.dataclass(frozen=True)
class TimeDistributed(PassMask):
    """Keras' ``TimeDistributed``: the same layer at every time step.

    Maps `layer` over axis 1 of (B, T, ...) inputs with `jax.vmap`. Params
    are the inner layer's own. As in Keras, a mask (B, T, ...) hands each
    step's slice ``mask[:, t]`` to an inner layer whose call names a `mask`
    parameter (a recurrent layer over (B, T, T2, D) gets its (B, T2) mask);
    an inner layer without one is called without it.

    Args:
      layer: a layer with ``init``, ``output_shape`` and
        ``layer(params, x, *, key, training)`` (and optionally ``mask``),
        applied to each (B, ...) time slice.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = TimeDistributed(Dense(2))
      >>> params = layer.init(jax.random.key(0), (None, 5, 3))
      >>> layer(params, jnp.ones((4, 5, 3))).shape
      (4, 5, 2)
    """

    layer: Any

    def init(self, key: jax.Array, input_shape: Shape) -> Any:
        """The inner layer's params for one time slice of (B, T, ...).

        Args:
          key: PRNG key.
          input_shape: (B, T, ...), None for unknown sizes.

        Returns:
          ``layer.init(key, (B, ...))``.
        """
        shape = _shape_tuple(input_shape, "(None, T, D)")
        if len(shape) < 3:
            raise ValueError(
                "TimeDistributed needs inputs (B, T, ...), got "
                f"input_shape {shape}."
            )
        return self.layer.init(key, (shape[0],) + shape[2:])

    def __call__(
        self, params, x: jax.Array, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Applies the inner layer at every time step.

        Args:
          params: the inner layer's params.
          x: (B, T, ...).
          mask: optional bool (B, T) or (B, T, ...); step t hands
            ``mask[:, t]`` to an inner layer that takes a mask. The same
            mask goes on to the next layer (`compute_mask`).
          key: PRNG key for the inner layer, split into one key per step.
          training: passed to the inner layer.

        Returns:
          (B, T, ...) with the inner layer's output at each step.

        Raises:
          TypeError: `mask` is not bool.
          ValueError: `x` has no time axis, or `mask` does not start with
            x's (B, T) (Keras' check, keras/src/layers/rnn/time_distributed.py).
        """
        if x.ndim < 3:
            raise ValueError(
                "TimeDistributed needs inputs (B, T, ...), got "
                f"shape {x.shape}."
            )
        if mask is not None:
            mask = _check_step_mask(mask, x.shape)
            if not _takes_mask(self.layer):
                mask = None
        # A key per step, so a random inner layer (Dropout) draws a fresh
        # mask at every step, as Keras' TimeDistributed does.
        keys = None if key is None else jax.random.split(key, x.shape[1])

        def step(x_t, mask_t, key_t):
            kwargs = {} if mask_t is None else {"mask": mask_t}
            if key_t is not None:
                kwargs["key"] = key_t
            return self.layer(params, x_t, training=training, **kwargs)

        in_axes = (1, None if mask is None else 1, None if keys is None else 0)
        return jax.vmap(step, in_axes=in_axes, out_axes=1)(x, mask, keys)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """(B, T, ...) with the inner layer's output shape per step."""
        shape = _shape_tuple(input_shape, "(None, T, D)")
        if len(shape) < 3:
            raise ValueError(
                "TimeDistributed needs inputs (B, T, ...), got "
                f"input_shape {shape}."
            )
        inner = self.layer.output_shape((shape[0],) + shape[2:])
        return (inner[0], shape[1]) + tuple(inner[1:])


@dataclasses.dataclass(frozen=True)
class Dropout(PassMask):
    """Keras' ``Dropout``: zero a fraction `rate` of inputs in training and
    scale the rest by 1 / (1 - rate); the identity in inference.

    Args:
      rate: in [0, 1).
      noise_shape: optional shape of the keep mask, a tuple (or list) of
        the inputs' rank holding None (the inputs' size), 1 (one draw shared
        along that axis) or the inputs' size, e.g. ``(None, 1, None)`` for
        one mask per sequence.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = Dropout(0.5)
      >>> layer({}, jnp.ones(3)).tolist()
      [1.0, 1.0, 1.0]
      >>> y = layer({}, jnp.ones(1000), key=jax.random.key(0), training=True)
      >>> sorted(set(y.tolist()))
      [0.0, 2.0]
    """

    rate: float
    noise_shape: tuple[Any, ...] | None = None

    def __post_init__(self):
        check_rate("rate", self.rate)
        if self.noise_shape is not None:
            # A tuple, as Keras stores it, and hashable for jax.jit.
            object.__setattr__(
                self, "noise_shape", _checked_noise_shape(self.noise_shape)
            )

    def init(self, key: jax.Array, input_shape: Shape = ()) -> dict:
        """Returns ``{}``: dropout has no params."""
        return {}

    def __call__(
        self, params, x: jax.Array, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Drops inputs in training.

        Args:
          params: ``{}``.
          x: any shape, floating.
          mask: ignored.
          key: PRNG key; needed when `training` and ``rate > 0``.
          training: drop; otherwise return `x` unchanged.

        Returns:
          `x` with a fraction `rate` of entries zeroed and the rest scaled
          by 1 / (1 - rate), in training; `x` otherwise.

        Raises:
          ValueError: in training with ``rate > 0`` and no `key`.
        """
        if not training or self.rate == 0:
            return x
        if key is None:
            raise ValueError(
                f"Dropout(rate={self.rate}) in training needs a "
                "PRNG `key`; got key=None."
            )
        shape = x.shape
        if self.noise_shape is not None:
            shape = self._noise_shape_for(x.shape)
        keep = jax.random.bernoulli(key, 1.0 - self.rate, shape)
        return jnp.where(
            keep,
            x / jnp.asarray(1.0 - self.rate, x.dtype),
            jnp.zeros((), x.dtype),
        )

    def _noise_shape_for(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """`noise_shape` with x's sizes for None; each size must be x's or 1
        (a mask shared along that axis)."""
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"Dropout `noise_shape` {self.noise_shape} must "
                f"have the inputs' rank {len(shape)}, got inputs "
                f"of shape {shape}."
            )
        noise = tuple(
            n if d is None else d for n, d in zip(shape, self.noise_shape)
        )
        if any(d not in (1, n) for n, d in zip(shape, noise)):
            raise ValueError(
                f"Dropout `noise_shape` {self.noise_shape} must "
                f"broadcast to the inputs' shape {shape}: each "
                "size None, 1 or the inputs' own."
            )
        return noise

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged."""
        return tuple(input_shape)


def _checked_noise_shape(noise_shape: Any) -> tuple[int | None, ...]:
    """`noise_shape` as a tuple of positive ints and None (Keras' rules,
    keras/src/layers/regularization/dropout.py)."""
    if isinstance(noise_shape, (str, bytes)) or not hasattr(
        noise_shape, "__iter__"
    ):
        raise TypeError(
            "Dropout `noise_shape` must be a tuple or list of "
            f"ints and None, got {describe(noise_shape)}."
        )
    noise_shape = tuple(noise_shape)
    for d in noise_shape:
        if d is not None and (
            isinstance(d, bool) or not isinstance(d, numbers.Integral)
        ):
            raise TypeError(
                "Dropout `noise_shape` must hold ints and None, "
                f"got {noise_shape}."
            )
        if d is not None and d <= 0:
            raise ValueError(
                "Dropout `noise_shape` sizes must be positive "
                f"ints or None, got {noise_shape}."
            )
    return tuple(None if d is None else int(d) for d in noise_shape)
