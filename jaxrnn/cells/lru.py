"""The linear recurrent unit (Orvieto et al., 2023, "Resurrecting Recurrent
Neural Networks for Long Sequences").

A complex diagonal recurrence ``h' = lambda * h + gamma * (x @ B)`` with
``lambda = exp(-exp(nu_log) + i exp(theta_log))`` (so ``|lambda| < 1`` for
any finite parameters) and the output ``y = Re(h' @ C) + D * x``. It is
linear in the carry, so ``rnn(..., parallel=True)`` runs it with an
associative scan; step by step it is an ordinary cell.

The carry is real: the pair ``(h_re, h_im)``, each (..., N). `jaxrnn.rnn`,
`reset_carry`, `StackedCells` and carries threaded between calls all expect
real floating arrays; ``lax.complex(h_re, h_im)`` rebuilds the complex state.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxrnn._validation import (
    batch_shape_of,
    check_params,
    check_positive_int,
    check_prng_key,
)
from jaxrnn.cells._base import wider_float
from jaxrnn.cells._step import REQUIRED, projected_call


def _check_real(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class LRUCell:
    """One LRU step (Orvieto et al., 2023, Section 3 and Appendix A).

    ``h' = lambda * h + exp(gamma_log) * (x @ (B_re + i B_im))`` (complex,
    elementwise in the N state units), ``y = Re(h' @ (C_re + i C_im)) + D * x``.
    ``lambda = exp(-exp(nu_log) + i exp(theta_log))``: its modulus
    ``exp(-exp(nu_log))`` stays below 1 whatever the parameters, so the
    recurrence is stable during training.

    Initialisation (the paper's): ``|lambda|^2`` uniform on
    ``[r_min^2, r_max^2]`` (uniform on the ring's area), phase uniform on
    ``[0, max_phase]``, ``gamma = sqrt(1 - |lambda|^2)`` (the normalisation
    that keeps h's scale at the input's), B normal with variance 1/(2H) for
    each of its real and imaginary parts, C normal with variance 1/N, D
    standard normal, all drawn with `jax.nn.initializers`. The paper uses
    ``r_min=0.9, r_max=0.999`` (and a smaller ``max_phase``) for its
    long-range tasks.

    Args:
      units: H, the input and output features (the skip ``D * x`` is
        elementwise, so the input has H features too).
      state_units: N, the complex state size; defaults to `units`.
      r_min: the ring's inner radius, in [0, 1).
      r_max: the ring's outer radius, in (r_min, 1].
      max_phase: the largest initial phase of lambda, > 0 (2 pi: all around).
      param_dtype: dtype of the arrays `init` creates.

    Params (B and C in the ``x @ kernel`` layout, so transposed from the
    paper's code): ``nu_log``, ``theta_log``, ``gamma_log`` (N,); ``B_re``,
    ``B_im`` (H, N); ``C_re``, ``C_im`` (N, H); ``D`` (H,).

    The carry is ``(h_re, h_im)``, each (..., N); the output is (..., H).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import rnn
      >>> cell = LRUCell(4, state_units=8, r_min=0.9, r_max=0.999)
      >>> params = cell.init(jax.random.key(0), 4)
      >>> (h_re, h_im), y = cell(params, cell.initial_carry((2,)),
      ...                        jnp.ones((2, 4)))
      >>> ys, carry = rnn(cell, params, jnp.ones((2, 30, 4)), parallel=True)
      >>> h_re.shape, y.shape, ys.shape
      ((2, 8), (2, 4), (2, 30, 4))
      >>> bool(jnp.all(jnp.abs(cell.eigenvalues(params)) < 1))
      True
    """

    units: int
    state_units: int | None = None
    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 2 * math.pi
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_positive_int("units", self.units)
        if self.state_units is not None:
            check_positive_int("state_units", self.state_units)
        for name in ("r_min", "r_max", "max_phase"):
            _check_real(name, getattr(self, name))
        if not 0.0 <= self.r_min < self.r_max <= 1.0:
            raise ValueError(
                "LRUCell needs 0 <= r_min < r_max <= 1, got "
                f"r_min={self.r_min}, r_max={self.r_max}."
            )
        if not self.max_phase > 0:
            raise ValueError(f"`max_phase` must be > 0, got {self.max_phase}.")
        if not jnp.issubdtype(self.param_dtype, jnp.floating):
            raise TypeError(
                "`param_dtype` must be a floating dtype, got "
                f"{self.param_dtype!r}."
            )

    @property
    def _n(self) -> int:
        return self.units if self.state_units is None else self.state_units

    @property
    def state_size(self) -> tuple[int, int]:
        """Keras' cell protocol: (N, N) for the carry (h_re, h_im)."""
        return (self._n, self._n)

    @property
    def output_size(self) -> int:
        """Keras' cell protocol: the size of the output, H."""
        return self.units

    def param_shapes(self, input_dim: int) -> dict[str, tuple[int, ...]]:
        """The shapes `init` creates (input_dim must equal `units`)."""
        h, n = input_dim, self._n
        return {
            "nu_log": (n,),
            "theta_log": (n,),
            "gamma_log": (n,),
            "B_re": (h, n),
            "B_im": (h, n),
            "C_re": (n, self.units),
            "C_im": (n, self.units),
            "D": (self.units,),
        }

    def _check_input_dim(self, input_dim: int) -> None:
        if input_dim != self.units:
            raise ValueError(
                f"LRUCell(units={self.units}) needs inputs with {self.units} "
                f"features (the skip D * x is elementwise), got {input_dim}; "
                "project the inputs to `units` features first."
            )

    def init(self, key: jax.Array, input_dim: int) -> dict[str, jax.Array]:
        """The paper's initialisation (see the class docstring).

        Raises:
          ValueError: `input_dim` is not `units`.
        """
        check_prng_key("key", key)
        check_positive_int("input_dim", input_dim)
        self._check_input_dim(input_dim)
        h, n, dtype = self.units, self._n, self.param_dtype
        keys = jax.random.split(key, 7)
        # Bounds away from 0 keep the logs finite (r_min = 0, a zero phase);
        # the cap below 1 keeps |lambda| < 1 after float32 rounds it.
        tiny = jnp.finfo(jnp.float32).tiny
        u1 = jax.random.uniform(keys[0], (n,), jnp.float32, minval=tiny)
        u2 = jax.random.uniform(keys[1], (n,), jnp.float32, minval=tiny)
        modulus_sq = jnp.minimum(
            u1 * (self.r_max**2 - self.r_min**2) + self.r_min**2,
            1.0 - 2.0**-21,
        )
        nu_log = jnp.log(-0.5 * jnp.log(modulus_sq))
        theta_log = jnp.log(self.max_phase * u2)
        gamma_log = 0.5 * jnp.log1p(-modulus_sq)  # log sqrt(1 - |lambda|^2)
        normal = jax.nn.initializers.normal
        b_init = normal(1.0 / math.sqrt(2 * h))
        c_init = normal(1.0 / math.sqrt(n))
        params = {
            "nu_log": nu_log,
            "theta_log": theta_log,
            "gamma_log": gamma_log,
            "B_re": b_init(keys[2], (h, n)),
            "B_im": b_init(keys[3], (h, n)),
            "C_re": c_init(keys[4], (n, h)),
            "C_im": c_init(keys[5], (n, h)),
            "D": normal(1.0)(keys[6], (h,)),
        }
        return {k: v.astype(dtype) for k, v in params.items()}

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = jnp.float32
    ) -> tuple[jax.Array, jax.Array]:
        """``(h_re, h_im)``, zeros of shape `(*batch_shape, N)` each (an int B
        means (B,))."""
        zeros = jnp.zeros((*batch_shape_of(batch_shape), self._n), dtype)
        return zeros, zeros

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises if `params` lacks an array or has one of the wrong shape, or
        if `input_dim` is not `units`."""
        self._check_input_dim(input_dim)
        check_params("LRUCell", params, self.param_shapes(input_dim))

    def eigenvalues(self, params: dict[str, jax.Array]) -> jax.Array:
        """The diagonal recurrence: lambda, complex (N,)."""
        re, im = self._lambda(params, params["nu_log"].dtype)
        return lax.complex(re, im)

    def _lambda(self, params, dtype):
        modulus = jnp.exp(-jnp.exp(params["nu_log"].astype(dtype)))
        phase = jnp.exp(params["theta_log"].astype(dtype))
        return modulus * jnp.cos(phase), modulus * jnp.sin(phase)

    # The projected step (jaxrnn.protocols.ProjectedCell); no dropout, so
    # no `dropout_masks`.
    def project_inputs(
        self, params: dict[str, jax.Array], xs: jax.Array, dropout: None = None
    ) -> jax.Array:
        """(..., H) -> (..., 2N + H): ``[gamma * Re(x B), gamma * Im(x B), x]``
        (x rides along for the skip ``D * x``)."""
        del dropout  # always None: no dropout
        bu_re, bu_im = self._input_terms(params, xs)
        return jnp.concatenate([bu_re, bu_im, xs.astype(bu_re.dtype)], -1)

    def _input_terms(self, params, xs):
        dtype = wider_float(xs.dtype, params["B_re"].dtype)
        xs = xs.astype(dtype)
        gamma = jnp.exp(params["gamma_log"].astype(dtype))
        return (
            (xs @ params["B_re"].astype(dtype)) * gamma,
            (xs @ params["B_im"].astype(dtype)) * gamma,
        )

    def _output(self, params, h_re, h_im, x):
        # Re((C_re + i C_im)^T h) = h_re @ C_re - h_im @ C_im.
        dtype = h_re.dtype
        return (
            h_re @ params["C_re"].astype(dtype)
            - h_im @ params["C_im"].astype(dtype)
            + params["D"].astype(dtype) * x.astype(dtype)
        )

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: tuple[jax.Array, jax.Array],
        projected: jax.Array,
        dropout: None = None,
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """One step from ``project_inputs``' (..., 2N + H).

        Returns:
          ((h_re', h_im'), y) with y (..., H); the carry keeps its dtype.
        """
        del dropout
        n = self._n
        bu_re, bu_im, x = (
            projected[..., :n],
            projected[..., n : 2 * n],
            projected[..., 2 * n :],
        )
        dtype = projected.dtype
        lam_re, lam_im = self._lambda(params, dtype)
        h_re, h_im = carry[0].astype(dtype), carry[1].astype(dtype)
        new_re = lam_re * h_re - lam_im * h_im + bu_re
        new_im = lam_re * h_im + lam_im * h_re + bu_im
        y = self._output(params, new_re, new_im, x)
        return (
            new_re.astype(carry[0].dtype),
            new_im.astype(carry[1].dtype),
        ), y

    def __call__(
        self,
        params: dict[str, jax.Array] = REQUIRED,
        carry: tuple[jax.Array, jax.Array] = REQUIRED,
        x: ArrayLike = REQUIRED,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """Advances one time step.

        Args:
          params: the dict from `init`.
          carry: ``(h_re, h_im)``, each (..., N).
          x: (..., H) input; leading axes are batch axes, possibly none.
          key: unused (no dropout); part of the cell protocol.
          training: unused (the same computation either way).

        Returns:
          ((h_re', h_im'), y) with y (..., H).
        """
        del key, training  # no dropout
        return projected_call(self, params, carry, x, features="H")

    # The parallel protocol of `rnn(..., parallel=True)` (jaxrnn/_parallel.py):
    # the scan runs on the complex state.
    def parallel_coefficients(
        self,
        params: dict[str, jax.Array],
        xs: jax.Array,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """(lambda (N,), b (..., N)), complex, with ``h_t = lambda * h_{t-1} +
        b_t``; lambda broadcasts against b."""
        del key, training
        bu_re, bu_im = self._input_terms(params, xs)
        lam = lax.complex(*self._lambda(params, bu_re.dtype))
        return lam, lax.complex(bu_re, bu_im)

    def carry_to_state(self, carry: tuple[jax.Array, jax.Array]) -> jax.Array:
        """``(h_re, h_im)`` -> the complex state."""
        return lax.complex(carry[0], carry[1])

    def state_to_carry(self, state: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The complex state -> ``(h_re, h_im)``."""
        return jnp.real(state), jnp.imag(state)

    def parallel_outputs(
        self, params: dict[str, jax.Array], states: jax.Array, xs: jax.Array
    ) -> jax.Array:
        """``Re(h @ C) + D * x`` for states (..., N) and inputs (..., H)."""
        return self._output(params, jnp.real(states), jnp.imag(states), xs)
