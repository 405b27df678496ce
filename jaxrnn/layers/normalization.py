"""BatchNormalization (running statistics as explicit state, batch
renormalization included) and LayerNormalization, with Keras' defaults,
axes and parameter names."""

from __future__ import annotations

import dataclasses
import numbers
import types
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import initializers
from jaxrnn._validation import check_bool, check_floating, check_rate, describe
from jaxrnn.initializers import InitializerLike
from jaxrnn.layers.core import PassMask
from jaxrnn.layers.recurrent import _shape_tuple
from jaxrnn.typing import Shape

# Keras adds its backend epsilon to masked counts to avoid 0 / 0.
_COUNT_EPSILON = 1e-7
_CLIPPING_KEYS = ("rmax", "rmin", "dmax")


def _check_epsilon(epsilon: Any) -> None:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(
            f"`epsilon` must be a float >= 0, got {describe(epsilon)}."
        )
    if not epsilon >= 0:
        raise ValueError(f"`epsilon` must be a float >= 0, got {epsilon}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _resolve_axes(
    owner: str, axis: int | tuple[int, ...], ndim: int
) -> tuple[int, ...]:
    """`axis` as sorted non-negative axes of a rank-`ndim` input."""
    axes = (axis,) if _is_int(axis) else tuple(axis)
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


def _axis_sizes(owner: str, input_shape: Shape, axis: Any) -> tuple[int, ...]:
    """The known sizes of `input_shape` at `axis`: the weights' shape."""
    shape = _shape_tuple(input_shape, "(None, D)", "(None, {})")
    sizes = tuple(shape[a] for a in _resolve_axes(owner, axis, len(shape)))
    if not all(_is_int(s) for s in sizes):
        raise ValueError(
            f"{owner} needs `input_shape` with known sizes at "
            f"axis {axis}, got {shape}."
        )
    return tuple(int(s) for s in sizes)


def _check_params(
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


def _compute_dtype(x: jax.Array) -> jax.Array:
    # Keras normalises in at least float32: half precision overflows.
    return x.astype(jnp.float32) if x.dtype.itemsize < 4 else x


def _normalize(x, mean, variance, gamma, beta, epsilon):
    # Keras' order of operations (keras/src/backend/jax/nn.py), so results
    # agree to rounding even where x - mean cancels.
    inv = jax.lax.rsqrt(variance + jnp.asarray(epsilon, x.dtype))
    if gamma is not None:
        inv = inv * gamma
    offset = -mean * inv
    if beta is not None:
        offset = offset + beta
    return x * inv + offset


def _checked_clipping(clipping: Any) -> Mapping[str, float]:
    """Keras' checks of `renorm_clipping`, as a read-only mapping (the
    layer stays hashable for `jax.jit`)."""
    clipping = {} if clipping is None else clipping
    if not isinstance(clipping, Mapping):
        raise TypeError(
            "`renorm_clipping` must be a dict with keys among "
            f"{list(_CLIPPING_KEYS)}, got {describe(clipping)}."
        )
    unknown = sorted(set(clipping) - set(_CLIPPING_KEYS))
    if unknown:
        raise ValueError(
            f"`renorm_clipping` has invalid keys {unknown}; "
            f"supported keys: {list(_CLIPPING_KEYS)}."
        )
    for name, value in clipping.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Real)
        ):
            raise TypeError(
                f"`renorm_clipping[{name!r}]` must be a float, "
                f"got {describe(value)}."
            )
    rmax, rmin, dmax = (clipping.get(k) for k in ("rmax", "rmin", "dmax"))
    if rmax is not None and rmin is not None and rmax < rmin:
        raise ValueError(
            "`renorm_clipping`: rmax must be >= rmin, got "
            f"rmax={rmax}, rmin={rmin}."
        )
    if dmax is not None and dmax < 0:
        raise ValueError(
            f"`renorm_clipping`: dmax must be >= 0, got dmax={dmax}."
        )
    return types.MappingProxyType(
        {k: None if v is None else float(v) for k, v in clipping.items()}
    )


@dataclasses.dataclass(frozen=True)
class BatchNormalization(PassMask):
    """Keras' ``BatchNormalization`` over one axis, with batch
    renormalization (Ioffe, 2017) as Keras does it.

    The running statistics are params entries (non-trainable, as in Keras)
    and are never updated in place: ``layer(params, x, training=True)``
    normalises with the batch's statistics, and ``layer.apply(params, x,
    training=True)`` also returns the params with the statistics moved, for
    the caller to keep.

    Args:
      axis: the features axis C kept (Keras: one int, negative counts from
        the end); the statistics reduce over every other axis.
      momentum: of the moving averages (Keras' default 0.99):
        ``moving = momentum * moving + (1 - momentum) * batch``.
      epsilon: added to the variance (Keras' default 1e-3).
      center: learn an offset ``beta``.
      scale: learn a scale ``gamma``.
      beta_initializer: Keras name or callable for ``beta``.
      gamma_initializer: for ``gamma``.
      moving_mean_initializer: for ``moving_mean`` (and ``renorm_mean``).
      moving_variance_initializer: for ``moving_variance`` (and, square
        rooted, ``moving_stddev`` and ``renorm_stddev``).
      renorm: batch renormalization: in training, the batch-normalised
        values are corrected to ``x_hat * r + d`` with ``r = stddev /
        renorm_stddev`` and ``d = (mean - renorm_mean) / renorm_stddev``
        (no gradient through r, d), and ``moving_variance`` follows a moving
        standard deviation. Inference is unchanged.
      renorm_clipping: with `renorm`, a dict with optional keys ``'rmax'``,
        ``'rmin'``, ``'dmax'``: r is clipped to [rmin, rmax] and d to
        [-dmax, dmax]. Kept as a read-only mapping.
      renorm_momentum: with `renorm`, the momentum of ``renorm_mean`` and
        ``renorm_stddev``.
      param_dtype: dtype of the arrays `init` creates.

    Params, each (C,), in Keras' weight order: ``gamma``, ``beta``,
    ``moving_mean``, ``moving_variance``, and with `renorm`
    ``moving_stddev``, ``renorm_mean``, ``renorm_stddev``; no gamma without
    `scale`, no beta without `center`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> bn = BatchNormalization()
      >>> params = bn.init(jax.random.key(0), (None, 3))
      >>> y, new = bn.apply(params, jnp.arange(6.0).reshape(2, 3), training=True)
      >>> [round(m, 4) for m in new["moving_mean"].tolist()]
      [0.015, 0.025, 0.035]
    """

    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: InitializerLike = "zeros"
    gamma_initializer: InitializerLike = "ones"
    moving_mean_initializer: InitializerLike = "zeros"
    moving_variance_initializer: InitializerLike = "ones"
    renorm: bool = False
    # Compared but not hashed: a mapping is unhashable.
    renorm_clipping: Mapping[str, float] | None = dataclasses.field(
        default=None, hash=False
    )
    renorm_momentum: float = 0.99
    param_dtype: Any = "float32"

    non_trainable = (
        "moving_mean",
        "moving_variance",
        "moving_stddev",
        "renorm_mean",
        "renorm_stddev",
    )

    def __post_init__(self):
        if not _is_int(self.axis):
            raise TypeError(
                "BatchNormalization normalises one axis, as Keras "
                "3 does: `axis` must be an int, got "
                f"{describe(self.axis)}."
            )
        check_rate("momentum", self.momentum)
        check_rate("renorm_momentum", self.renorm_momentum)
        _check_epsilon(self.epsilon)
        for name in ("center", "scale", "renorm"):
            check_bool(name, getattr(self, name))
        for name in ("beta", "gamma", "moving_mean", "moving_variance"):
            initializers.get(getattr(self, f"{name}_initializer"))
        if self.renorm:
            object.__setattr__(
                self,
                "renorm_clipping",
                _checked_clipping(self.renorm_clipping),
            )
            return
        # Keras keeps these silently without renorm; here they would be
        # accepted only to be ignored.
        if self.renorm_clipping:
            raise ValueError(
                "`renorm_clipping` applies with renorm=True "
                f"only, got {dict(self.renorm_clipping)} with "
                "renorm=False."
            )
        if self.renorm_momentum != 0.99:
            raise ValueError(
                "`renorm_momentum` applies with renorm=True "
                f"only, got {self.renorm_momentum} with "
                "renorm=False."
            )
        object.__setattr__(self, "renorm_clipping", None)

    def _param_names(self) -> list[str]:
        names = ["gamma"] if self.scale else []
        names += ["beta"] if self.center else []
        names += ["moving_mean", "moving_variance"]
        if self.renorm:
            names += ["moving_stddev", "renorm_mean", "renorm_stddev"]
        return names

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Creates the params for inputs of `input_shape`.

        Args:
          key: PRNG key (for random initializers).
          input_shape: any shape with a known size C at `axis`.

        Returns:
          The params, each (C,), in Keras' weight order; with the default
          initializers gamma ones, beta zeros, moving_mean zeros,
          moving_variance ones. With `renorm`, ``renorm_mean`` starts as
          moving_mean does, and ``moving_stddev`` and ``renorm_stddev`` as
          the square root of the moving variance initializer's values.
        """
        shape = _axis_sizes("BatchNormalization", input_shape, self.axis)
        keys = dict(
            zip(
                self._param_names(),
                jax.random.split(key, len(self._param_names())),
            )
        )
        sources = {
            "gamma": self.gamma_initializer,
            "beta": self.beta_initializer,
            "moving_mean": self.moving_mean_initializer,
            "moving_variance": self.moving_variance_initializer,
            "renorm_mean": self.moving_mean_initializer,
            "moving_stddev": self.moving_variance_initializer,
            "renorm_stddev": self.moving_variance_initializer,
        }
        params = {}
        for name, k in keys.items():
            value = initializers.initialize(
                sources[name], k, shape, self.param_dtype
            )
            params[name] = (
                jnp.sqrt(value) if name.endswith("stddev") else value
            )
        return params

    def _checked_mask(self, mask: Any, shape: tuple[int, ...]) -> jax.Array:
        """`mask` as bool; Keras casts any mask to bool and broadcasts it
        over the last axis."""
        mask = jnp.asarray(mask)
        if jnp.issubdtype(mask.dtype, jnp.complexfloating):
            raise TypeError(
                f"BatchNormalization `mask` must be bool (or "
                f"numbers, nonzero for valid), got {mask.dtype}."
            )
        if mask.ndim != len(shape) - 1:
            raise ValueError(
                f"BatchNormalization `mask` must have one axis "
                f"fewer than the inputs {shape}, got "
                f"{mask.shape}."
            )
        try:
            fits = np.broadcast_shapes(mask.shape, shape[:-1]) == shape[:-1]
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"BatchNormalization `mask` must broadcast to "
                f"the inputs' leading shape {shape[:-1]}, got "
                f"{mask.shape}."
            )
        return mask.astype(jnp.bool_)

    def _moments(self, x, axis, mask):
        axes = tuple(a for a in range(x.ndim) if a != axis)
        if mask is None:
            return jnp.mean(x, axes), jnp.var(x, axes)
        # Keras spreads the mask over the last axis, whichever is `axis`.
        valid = jnp.broadcast_to(mask[..., None], x.shape)
        count = (
            jnp.sum(valid.astype(x.dtype), axes, keepdims=True)
            + _COUNT_EPSILON
        )
        mean = jnp.sum(jnp.where(valid, x, 0), axes, keepdims=True) / count
        variance = (
            jnp.sum(
                jnp.square(jnp.where(valid, x - mean, 0)), axes, keepdims=True
            )
            / count
        )
        return mean.reshape(-1), variance.reshape(-1)

    def _renormalized(self, params, mean, variance, gamma, beta):
        """gamma and beta with the renorm correction (r, d) folded in:
        ``(x_hat * r + d) * gamma + beta``."""
        dtype = mean.dtype
        stddev = jnp.sqrt(variance + self.epsilon)
        renorm_mean = params["renorm_mean"].astype(dtype)
        # Keras floors the running stddev at sqrt(epsilon) early in training.
        renorm_stddev = jnp.maximum(
            params["renorm_stddev"].astype(dtype),
            jnp.sqrt(jnp.asarray(self.epsilon, dtype)),
        )
        r = stddev / renorm_stddev
        d = (mean - renorm_mean) / renorm_stddev
        clip = self.renorm_clipping
        if clip.get("rmin") is not None:
            r = jnp.maximum(r, clip["rmin"])
        if clip.get("rmax") is not None:
            r = jnp.minimum(r, clip["rmax"])
        if clip.get("dmax") is not None:
            d = jnp.clip(d, -clip["dmax"], clip["dmax"])
        r, d = jax.lax.stop_gradient(r), jax.lax.stop_gradient(d)
        new_gamma, new_beta = (
            (r, d) if gamma is None else (r * gamma, d * gamma)
        )
        return new_gamma, new_beta if beta is None else new_beta + beta

    def _moved(self, params, mean, variance) -> dict:
        """`params` with the statistics moved towards the batch's."""
        mean, variance = (
            jax.lax.stop_gradient(mean),
            jax.lax.stop_gradient(variance),
        )

        def towards(name, batch, momentum):
            old = params[name].astype(batch.dtype)
            return old * momentum + batch * (1.0 - momentum)

        moved = dict(params)
        new = {"moving_mean": towards("moving_mean", mean, self.momentum)}
        if not self.renorm:
            new["moving_variance"] = towards(
                "moving_variance", variance, self.momentum
            )
        else:
            stddev = jnp.sqrt(variance + self.epsilon)
            new["renorm_mean"] = towards(
                "renorm_mean", mean, self.renorm_momentum
            )
            new["renorm_stddev"] = towards(
                "renorm_stddev", stddev, self.renorm_momentum
            )
            new["moving_stddev"] = towards(
                "moving_stddev", stddev, self.momentum
            )
            # Keras derives the variance from the stddev, floored at 0
            # against rounding.
            new["moving_variance"] = jax.nn.relu(
                jnp.square(new["moving_stddev"]) - self.epsilon
            )
        for name, value in new.items():
            moved[name] = value.astype(params[name].dtype)
        return moved

    def apply(
        self, params, x: jax.Array, *, mask=None, key=None, training=False
    ) -> tuple[jax.Array, dict]:
        """Normalises and returns the moved statistics.

        Args:
          params: from `init`.
          x: floating inputs of any rank with C at `axis`, e.g. (B, T, C).
          mask: x's shape without its last axis, or broadcastable to it
            (e.g. (B, T), or (B, T, 1) for (B, T, S, C)), bool or numbers
            (nonzero: valid); in training only the valid entries make the
            batch statistics.
          key: ignored (every layer takes it).
          training: normalise with the batch's statistics and move the
            running ones; otherwise normalise with the running ones.

        Returns:
          ``(y, new_params)``: y in x's shape and dtype, and `params` with
          the statistics moved towards the batch's (in training; `params`
          itself otherwise).

        Raises:
          ValueError: `axis` is out of range for x, params do not fit, or
            `mask` does not broadcast to x's leading shape.
        """
        check_floating("inputs", x)
        x = jnp.asarray(x)
        axis = _resolve_axes("BatchNormalization", self.axis, x.ndim)[0]
        _check_params(
            "BatchNormalization", params, self._param_names(), (x.shape[axis],)
        )
        if mask is not None:
            mask = self._checked_mask(mask, x.shape)
        compute = _compute_dtype(x)
        gamma, beta = (
            None if name not in params else params[name].astype(compute.dtype)
            for name in ("gamma", "beta")
        )
        if training:
            mean, variance = self._moments(compute, axis, mask)
            if self.renorm:
                gamma, beta = self._renormalized(
                    params, mean, variance, gamma, beta
                )
            moved = self._moved(params, mean, variance)
        else:
            mean = params["moving_mean"].astype(compute.dtype)
            variance = params["moving_variance"].astype(compute.dtype)
            moved = params
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]

        def spread(v):
            return None if v is None else jnp.reshape(v, shape)

        y = _normalize(
            compute,
            spread(mean),
            spread(variance),
            spread(gamma),
            spread(beta),
            self.epsilon,
        )
        return y.astype(x.dtype), moved

    def __call__(
        self, params, x: jax.Array, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Normalises x with batch statistics in training, the moving ones
        in inference; returns x's shape. See `apply` for the arguments and
        for the moved statistics."""
        return self.apply(params, x, mask=mask, training=training)[0]

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged (`axis` must be in range for it)."""
        shape = _shape_tuple(input_shape, "(None, D)", "(None, {})")
        _resolve_axes("BatchNormalization", self.axis, len(shape))
        return shape


@dataclasses.dataclass(frozen=True)
class LayerNormalization(PassMask):
    """Keras' ``LayerNormalization`` over one or more axes.

    Normalises each example by the mean and variance over `axis`, then
    scales and offsets it: ``gamma * (x - mean) / sqrt(var + epsilon) +
    beta``.

    Args:
      axis: an int or a list/tuple of ints (negative counts from the end):
        the axes normalised together. Keras' default -1, the features.
      epsilon: added to the variance (Keras' default 1e-3).
      center: learn an offset ``beta``.
      scale: learn a scale ``gamma``.
      beta_initializer: Keras name or callable for ``beta``.
      gamma_initializer: for ``gamma``.
      rms_scaling: Keras' deprecated option, kept for its models: ``x /
        sqrt(var + epsilon) * gamma`` (the variance, not the mean square,
        as Keras computes it), always with gamma and never with beta, so
        `center` and `scale` do not apply.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``{'gamma', 'beta'}`` (as `center`, `scale` and `rms_scaling`
    ask), each shaped as the inputs at `axis` in ascending axis order, e.g.
    (D,) for the default.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> ln = LayerNormalization()
      >>> params = ln.init(jax.random.key(0), (None, 4))
      >>> ln(params, jnp.arange(4.0)).mean().round(6).item()
      0.0
    """

    axis: int | tuple[int, ...] = -1
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: InitializerLike = "zeros"
    gamma_initializer: InitializerLike = "ones"
    rms_scaling: bool = False
    param_dtype: Any = "float32"

    def __post_init__(self):
        axis = self.axis
        if (
            isinstance(axis, (list, tuple))
            and axis
            and all(map(_is_int, axis))
        ):
            object.__setattr__(self, "axis", tuple(int(a) for a in axis))
        elif not _is_int(axis):
            raise TypeError(
                "LayerNormalization `axis` must be an int or a "
                f"non-empty list/tuple of ints, got "
                f"{describe(axis)}."
            )
        _check_epsilon(self.epsilon)
        for name in ("center", "scale", "rms_scaling"):
            check_bool(name, getattr(self, name))
        initializers.get(self.beta_initializer)
        initializers.get(self.gamma_initializer)

    def _param_names(self) -> list[str]:
        names = ["gamma"] if self.scale or self.rms_scaling else []
        return names + (
            ["beta"] if self.center and not self.rms_scaling else []
        )

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Returns ``{'gamma': ones, 'beta': zeros}`` (with the default
        initializers; as `center`, `scale` and `rms_scaling` ask), each
        shaped as `input_shape` at `axis`, e.g. (D,) for (..., D)."""
        shape = _axis_sizes("LayerNormalization", input_shape, self.axis)
        sources = {
            "gamma": self.gamma_initializer,
            "beta": self.beta_initializer,
        }
        names = self._param_names()
        return {
            name: initializers.initialize(
                sources[name], k, shape, self.param_dtype
            )
            for name, k in zip(names, jax.random.split(key, 2))
        }

    def __call__(
        self, params, x: jax.Array, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Normalises over `axis`.

        Args:
          params: from `init`.
          x: floating inputs of any rank with `axis` in range, e.g.
            (B, T, D).
          mask: ignored (each example is normalised on its own).
          key: ignored (every layer takes it).
          training: ignored (the same computation either way).

        Returns:
          x's shape and dtype (computed in at least float32).

        Raises:
          ValueError: `axis` is out of range for x, or params do not fit.
        """
        check_floating("inputs", x)
        x = jnp.asarray(x)
        axes = _resolve_axes("LayerNormalization", self.axis, x.ndim)
        sizes = tuple(x.shape[a] for a in axes)
        _check_params("LayerNormalization", params, self._param_names(), sizes)
        compute = _compute_dtype(x)
        shape = [1] * x.ndim
        for a in axes:
            shape[a] = x.shape[a]
        gamma, beta = (
            None
            if name not in params
            else jnp.reshape(params[name].astype(compute.dtype), shape)
            for name in ("gamma", "beta")
        )
        variance = jnp.var(compute, axes, keepdims=True)
        if self.rms_scaling:
            y = compute * jax.lax.rsqrt(
                variance + jnp.asarray(self.epsilon, compute.dtype)
            )
            y = y if gamma is None else y * gamma
        else:
            mean = jnp.mean(compute, axes, keepdims=True)
            y = _normalize(compute, mean, variance, gamma, beta, self.epsilon)
        return y.astype(x.dtype)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged (`axis` must be in range for it)."""
        shape = _shape_tuple(input_shape, "(None, D)", "(None, {})")
        _resolve_axes("LayerNormalization", self.axis, len(shape))
        return shape
