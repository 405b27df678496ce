"""Keras' ``BatchNormalization``, batch renormalization included.

The running statistics are params entries, never updated in place:
`BatchNormalization.apply` returns them moved towards the batch's, for the
caller to keep (`Sequential.apply` gathers them for a model). Renorm's
correction and its clipping follow Keras (Ioffe, 2017).
"""

from __future__ import annotations

import dataclasses
import numbers
import types
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrnn import initializers
from jaxrnn._validation import check_bool, check_floating, check_rate, describe
from jaxrnn.initializers import InitializerLike
from jaxrnn.layers._base import PassMask
from jaxrnn.layers._common import shape_tuple
from jaxrnn.layers._normalize import (
    axis_sizes,
    batch_moments,
    check_epsilon,
    check_norm_params,
    compute_dtype,
    is_int,
    normalize,
    resolve_axes,
)
from jaxrnn.typing import Shape

_CLIPPING_KEYS = ("rmax", "rmin", "dmax")


def _checked_clipping(clipping: Any) -> Mapping[str, float | None]:
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
    renorm_clipping: Mapping[str, float | None] | None = dataclasses.field(
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
        if not is_int(self.axis):
            raise TypeError(
                "BatchNormalization normalises one axis, as Keras "
                "3 does: `axis` must be an int, got "
                f"{describe(self.axis)}."
            )
        check_rate("momentum", self.momentum)
        check_rate("renorm_momentum", self.renorm_momentum)
        check_epsilon(self.epsilon)
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
        shape = axis_sizes("BatchNormalization", input_shape, self.axis)
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
        assert clip is not None  # __post_init__ sets it with renorm on
        rmin, rmax, dmax = (clip.get(k) for k in ("rmin", "rmax", "dmax"))
        if rmin is not None:
            r = jnp.maximum(r, rmin)
        if rmax is not None:
            r = jnp.minimum(r, rmax)
        if dmax is not None:
            d = jnp.clip(d, -dmax, dmax)
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
        self, params, x: ArrayLike, *, mask=None, key=None, training=False
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
        axis = resolve_axes("BatchNormalization", self.axis, x.ndim)[0]
        check_norm_params(
            "BatchNormalization", params, self._param_names(), (x.shape[axis],)
        )
        if mask is not None:
            mask = self._checked_mask(mask, x.shape)
        compute = compute_dtype(x)
        gamma, beta = (
            None if name not in params else params[name].astype(compute.dtype)
            for name in ("gamma", "beta")
        )
        if training:
            mean, variance = batch_moments(compute, axis, mask)
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

        y = normalize(
            compute,
            spread(mean),
            spread(variance),
            spread(gamma),
            spread(beta),
            self.epsilon,
        )
        return y.astype(x.dtype), moved

    def __call__(
        self, params, x: ArrayLike, *, mask=None, key=None, training=False
    ) -> jax.Array:
        """Normalises x with batch statistics in training, the moving ones
        in inference; returns x's shape. See `apply` for the arguments and
        for the moved statistics."""
        return self.apply(params, x, mask=mask, training=training)[0]

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged (`axis` must be in range for it)."""
        shape = shape_tuple(input_shape, "(None, D)", "(None, {})")
        resolve_axes("BatchNormalization", self.axis, len(shape))
        return shape
