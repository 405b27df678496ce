"""Griffin's temporal block (De et al., 2024, "Griffin: Mixing Gated Linear
Recurrences with Local Attention for Efficient Language Models", Figure 2),
as recurrentgemma's ``RecurrentBlock`` computes it: two branches of the
input, ``gelu(x @ W_y)`` and ``RG-LRU(conv1d(x @ W_x))``, multiplied and
projected back, ``(y * h) @ W_out``.

The RG-LRU runs over the whole sequence at once (``lax.associative_scan``)
or step by step (``parallel=False``); the convolution is causal, over
`conv1d_temporal_width` steps. The state a stream carries from one call to
the next is ``(conv_state, h)``: the last ``width - 1`` inputs of the
convolution and the RG-LRU's h, recurrentgemma's ``RecurrentBlockCache``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxrnn._parallel import _linear_states
from jaxrnn._validation import (
    check_dtype_fields,
    check_positive_int,
    check_prng_key,
)
from jaxrnn.cells._step import REQUIRED
from jaxrnn.cells.rg_lru import RGLRUCell
from jaxrnn.layers._base import PassMask
from jaxrnn.layers._common import check_layer_call, shape_tuple
from jaxrnn.typing import Shape

State = tuple[jax.Array, jax.Array]


@dataclasses.dataclass(frozen=True)
class GriffinBlock(PassMask):
    """Griffin's recurrent (temporal-mixing) block.

    ``y = gelu(x @ linear_y)``; ``u = conv1d(x @ linear_x)``; ``h =
    RG-LRU(u)``; the output is ``(h * y) @ linear_out``. gelu is tanh-
    approximated, as recurrentgemma's (``jax.nn.gelu``'s default).

    Args:
      width: W, the output size (Griffin's model width; the input may
        have another size D).
      num_heads: the RG-LRU's heads (its gates are block-diagonal).
      lru_width: L, the branches' size; None: W.
      conv1d_temporal_width: K, the causal convolution's steps.
      min_rad: the RG-LRU's smallest initial decay (`RGLRUCell`).
      final_w_init_variance_scale: the variance scale of ``linear_out``'s
        initialisation.
      parallel: the RG-LRU as an associative scan (True) or a sequential
        one.
      return_state: also return the final ``(conv_state, h)``.
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.

    Params: ``linear_x``, ``linear_y`` ({``kernel`` (D, L), ``bias``
    (L,)}), ``linear_out`` ({``kernel`` (L, W), ``bias`` (W,)}),
    ``conv_1d`` ({``kernel`` (K, L), ``bias`` (L,)}) and ``rg_lru`` (the
    `RGLRUCell`'s params); recurrentgemma's initialisation.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> block = GriffinBlock(16, num_heads=2)
      >>> params = block.init(jax.random.key(0), (None, None, 16))
      >>> block(params, jnp.ones((2, 30, 16))).shape
      (2, 30, 16)
    """

    width: int
    num_heads: int = 1
    lru_width: int | None = None
    conv1d_temporal_width: int = 4
    min_rad: float = 0.9
    final_w_init_variance_scale: float = 1.0
    parallel: bool = True
    return_state: bool = False
    dtype: Any = None
    param_dtype: Any = "float32"

    def __post_init__(self):
        check_positive_int("width", self.width)
        check_positive_int("conv1d_temporal_width", self.conv1d_temporal_width)
        if self.lru_width is not None:
            check_positive_int("lru_width", self.lru_width)
        check_dtype_fields(self, ("dtype", "param_dtype"))
        self.rg_lru  # noqa: B018 -- checks num_heads against lru_width

    @property
    def branch_width(self) -> int:
        """L, the branches' size."""
        return self.width if self.lru_width is None else self.lru_width

    @property
    def rg_lru(self) -> RGLRUCell:
        """The block's RG-LRU cell."""
        return RGLRUCell(
            self.branch_width,
            num_heads=self.num_heads,
            min_rad=self.min_rad,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def _features(self, input_shape: Shape, name: str) -> int:
        shape = shape_tuple(input_shape, "(None, T, D)", "(None, None, {})")
        if len(shape) != 3 or shape[-1] is None:
            raise ValueError(
                f"GriffinBlock takes `{name}` (B, T, D) with a known D, got "
                f"{shape}."
            )
        return int(shape[-1])

    def param_shapes(self, input_dim: int) -> dict[str, Any]:
        """The shapes `init` creates for inputs of `input_dim` features."""
        lru, w, k = self.branch_width, self.width, self.conv1d_temporal_width
        return {
            "linear_x": {"kernel": (input_dim, lru), "bias": (lru,)},
            "linear_y": {"kernel": (input_dim, lru), "bias": (lru,)},
            "linear_out": {"kernel": (lru, w), "bias": (w,)},
            "conv_1d": {"kernel": (k, lru), "bias": (lru,)},
            "rg_lru": self.rg_lru.param_shapes(lru),
        }

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, Any]:
        """recurrentgemma's initialisation for inputs (B, T, D).

        Args:
          key: PRNG key.
          input_shape: (B, T, D), B and T may be None.
        """
        check_prng_key("key", key)
        shapes = self.param_shapes(self._features(input_shape, "input_shape"))
        keys = jax.random.split(key, 5)
        fan_in = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
        out = jax.nn.initializers.variance_scaling(
            self.final_w_init_variance_scale, "fan_in", "normal"
        )
        conv = jax.nn.initializers.variance_scaling(0.01, "fan_in", "normal")
        made = {
            "linear_x": fan_in(keys[0], shapes["linear_x"]["kernel"]),
            "linear_y": fan_in(keys[1], shapes["linear_y"]["kernel"]),
            "linear_out": out(keys[2], shapes["linear_out"]["kernel"]),
            "conv_1d": conv(keys[3], shapes["conv_1d"]["kernel"]),
        }
        params: dict[str, Any] = {
            name: {
                "kernel": kernel.astype(self.param_dtype),
                "bias": jnp.zeros(shapes[name]["bias"], self.param_dtype),
            }
            for name, kernel in made.items()
        }
        params["rg_lru"] = self.rg_lru.init(keys[4], self.branch_width)
        return params

    def initial_state(self, batch_size: int, dtype: Any = "float32") -> State:
        """Zeros: ``(conv_state (B, K - 1, L), h (B, L))``."""
        lru = self.branch_width
        return (
            jnp.zeros(
                (batch_size, self.conv1d_temporal_width - 1, lru), dtype
            ),
            jnp.zeros((batch_size, lru), dtype),
        )

    def check_params(self, params: Any, input_dim: int) -> None:
        """Raises ValueError naming a missing or wrongly shaped array."""
        want = self.param_shapes(input_dim)
        got = jax.tree.map(np.shape, params)
        if not isinstance(params, dict) or set(params) != set(want):
            raise ValueError(
                f"GriffinBlock params must hold {sorted(want)}, got "
                f"{sorted(params) if isinstance(params, dict) else params!r}."
            )
        for name, shapes in want.items():
            if name == "rg_lru":
                self.rg_lru.check_params(params[name], self.branch_width)
                continue
            for leaf, shape in shapes.items():
                found = (
                    got[name].get(leaf)
                    if isinstance(got[name], dict)
                    else None
                )
                if found != shape:
                    raise ValueError(
                        f"GriffinBlock params[{name!r}][{leaf!r}] must have "
                        f"shape {shape}, got {found}."
                    )

    def output_shape(self, input_shape: Shape) -> Any:
        """(B, T, W); with ``return_state`` also the state's shapes."""
        shape = shape_tuple(input_shape, "(None, T, D)", "(None, None, {})")
        self._features(shape, "input_shape")
        out = (shape[0], shape[1], self.width)
        if not self.return_state:
            return out
        k, lru = self.conv1d_temporal_width, self.branch_width
        return [out, (shape[0], k - 1, lru), (shape[0], lru)]

    def __call__(
        self,
        params: dict[str, Any],
        inputs: ArrayLike = REQUIRED,
        *,
        mask: ArrayLike | None = None,
        segment_pos: ArrayLike | None = None,
        initial_state: State | None = None,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> Any:
        """Runs the block over (B, T, D) inputs.

        Args:
          params: from `init`.
          inputs: (B, T, D), floating.
          mask: bool (B, T), True for valid steps, or None. A masked step
            feeds zeros to the convolution, keeps h, and outputs zeros; the
            final state is that after each row's last valid step. Padding on
            either side is the same as the shorter sequence (the document
            starts at the first valid step); a masked step between valid
            ones is a zero input to the convolution's window.
          segment_pos: int (B, T), each step's position in its document
            (recurrentgemma's meaning): where it is 0 the RG-LRU restarts
            (``h = i * x``, unnormalised) and the convolution does not look
            back past it. None: without an `initial_state`, each row is one
            document from its first valid step (``0, 1, ..., T - 1``
            unmasked); with one, no restart (the continuation of a
            stream).
          initial_state: ``(conv_state (B, K - 1, L), h (B, L))``, from a
            previous call's `return_state`; zeros when None.
          key: unused (no dropout); part of the layer protocol.
          training: unused (the same computation either way).

        Returns:
          (B, T, W), or ``[outputs, conv_state, h]`` with ``return_state``.
        """
        del key, training
        check_layer_call(self, inputs)
        inputs = jnp.asarray(inputs)
        if inputs.ndim != 3:
            raise ValueError(
                f"GriffinBlock takes inputs (B, T, D), got shape "
                f"{inputs.shape}; add a batch axis for one sequence "
                "(inputs[None])."
            )
        if not jnp.issubdtype(inputs.dtype, jnp.floating):
            raise TypeError(
                f"GriffinBlock inputs must be floating, got {inputs.dtype}."
            )
        batch, steps, features = inputs.shape
        self.check_params(params, features)
        lru, k = self.branch_width, self.conv1d_temporal_width
        step_mask = _checked_steps("mask", mask, (batch, steps), "bool")
        positions = _checked_steps(
            "segment_pos", segment_pos, (batch, steps), "integer"
        )
        if initial_state is None:
            conv_state, h0 = self.initial_state(batch)
            if positions is None:
                # Each row's document starts at its first valid step.
                valid = (
                    jnp.ones((batch, steps), jnp.int32)
                    if step_mask is None
                    else step_mask.astype(jnp.int32)
                )
                positions = jnp.cumsum(valid, 1) - 1
        else:
            conv_state, h0 = _checked_state(initial_state, batch, k, lru)
        dtype = self.dtype or jnp.result_type(
            inputs.dtype, params["linear_x"]["kernel"].dtype
        )
        x = inputs.astype(dtype)

        def dense(name, a):
            layer = params[name]
            return a @ layer["kernel"].astype(dtype) + layer["bias"].astype(
                dtype
            )

        y = jax.nn.gelu(dense("linear_y", x))
        u = dense("linear_x", x)
        if step_mask is not None:
            u = jnp.where(step_mask[..., None], u, jnp.zeros((), dtype))
        starts = None if positions is None else positions == 0
        history = jnp.concatenate([conv_state.astype(dtype), u], 1)
        conv = self._convolve(params["conv_1d"], history, starts, dtype)
        h, last_h = self._rg_lru(
            params["rg_lru"], conv, starts, step_mask, h0.astype(dtype)
        )
        outputs = dense("linear_out", h * y)
        if step_mask is not None:
            outputs = jnp.where(step_mask[..., None], outputs, 0)
        if not self.return_state:
            return outputs
        new_conv_state = _last_valid(history, step_mask, k - 1)
        return [
            outputs,
            new_conv_state.astype(conv_state.dtype),
            last_h.astype(h0.dtype),
        ]

    def _convolve(self, layer, history, starts, dtype):
        """The causal convolution over `history` (B, K - 1 + T, L); a step
        does not read past a document start at or before it."""
        k = self.conv1d_temporal_width
        steps = history.shape[1] - (k - 1)
        kernel = layer["kernel"].astype(dtype)
        if starts is not None:
            # Document starts at or before each step; a window of `shift`
            # steps back crosses one where the count differs.
            seen = jnp.cumsum(starts.astype(jnp.int32), 1)
            seen = jnp.pad(seen, ((0, 0), (k - 1, 0)))
        out = jnp.zeros(history.shape[:1] + (steps, history.shape[2]), dtype)
        for shift in range(k):
            window = history[:, k - 1 - shift : k - 1 - shift + steps]
            if starts is not None and shift:
                back = seen[:, k - 1 - shift : k - 1 - shift + steps]
                window = jnp.where(
                    (seen[:, k - 1 :] == back)[..., None], window, 0
                )
            out = out + window * kernel[k - 1 - shift]
        return out + layer["bias"].astype(dtype)

    def _rg_lru(self, params, conv, starts, step_mask, h0):
        """The RG-LRU over (B, T, L): (h (B, T, L), the last h (B, L))."""
        a, b = self.rg_lru.parallel_coefficients(params, conv, resets=starts)
        a, b = (jnp.swapaxes(c, 0, 1) for c in (a, b))  # time-major
        mask = None if step_mask is None else jnp.swapaxes(step_mask, 0, 1)
        if self.parallel:
            states = _linear_states(a, b, h0, mask)
        else:
            if mask is not None:
                keep = mask[..., None]
                a = jnp.where(keep, a, jnp.ones((), a.dtype))
                b = jnp.where(keep, b, jnp.zeros((), b.dtype))

            def step(h, ab):
                h = ab[0] * h + ab[1]
                return h, h

            _, states = lax.scan(step, h0, (a, b))
        return jnp.swapaxes(states, 0, 1), states[-1]


def _checked_steps(name, value, shape, kind):
    """`value` as an array (B, T) of `kind` ("bool" or "integer"), or None."""
    if value is None:
        return None
    value = jnp.asarray(value)
    if value.shape != shape:
        raise ValueError(
            f"`{name}` must have shape (B, T) = {shape}, got {value.shape}."
        )
    ok = (
        value.dtype == jnp.bool_
        if kind == "bool"
        else jnp.issubdtype(value.dtype, jnp.integer)
    )
    if not ok:
        raise TypeError(f"`{name}` must be {kind}, got {value.dtype}.")
    return value


def _checked_state(state, batch, k, lru):
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(
            "`initial_state` must be (conv_state, h), as return_state gives "
            f"it, got {type(state).__name__}."
        )
    conv_state, h = (jnp.asarray(s) for s in state)
    want = ((batch, k - 1, lru), (batch, lru))
    if (conv_state.shape, h.shape) != want:
        raise ValueError(
            f"`initial_state` must have shapes {want}, got "
            f"{(conv_state.shape, h.shape)}."
        )
    return conv_state, h


def _last_valid(history, step_mask, count):
    """The last `count` valid rows of `history` (B, count + T, L) per batch
    entry: its first `count` rows (the previous state) are valid, then
    `step_mask`'s."""
    if count == 0:
        return history[:, :0]
    if step_mask is None:
        return history[:, -count:]
    valid = jnp.concatenate(
        [jnp.ones(step_mask.shape[:1] + (count,), bool), step_mask], 1
    )
    # Rank of each valid row from the end: 1 for the last one.
    from_end = jnp.flip(jnp.cumsum(jnp.flip(valid, 1), 1), 1)
    rows = []
    for rank in range(count, 0, -1):
        index = jnp.argmax(valid & (from_end == rank), 1)
        rows.append(jnp.take_along_axis(history, index[:, None, None], 1))
    return jnp.concatenate(rows, 1)
