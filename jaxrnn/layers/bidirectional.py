"""Keras' Bidirectional wrapper."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrnn._validation import check_one_of
from jaxrnn.cells._base import REQUIRED
from jaxrnn.layers._common import check_layer_call, count_params
from jaxrnn.layers._cudnn_bidirectional import fused_call

MERGE_MODES = ("concat", "sum", "mul", "ave", None)

_MERGE: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "concat": lambda y, y_rev: jnp.concatenate([y, y_rev], axis=-1),
    "sum": lambda y, y_rev: y + y_rev,
    "mul": lambda y, y_rev: y * y_rev,
    "ave": lambda y, y_rev: (y + y_rev) / 2,
}


def _output_size(layer: Any) -> int | None:
    return getattr(getattr(layer, "cell", None), "output_size", None)


@dataclasses.dataclass(frozen=True)
class Bidirectional:
    """Runs a recurrent layer forwards and a copy backwards, then merges.

    As in Keras, the backward layer is the forward layer with
    ``go_backwards=True`` unless `backward_layer` is given, its outputs are
    flipped back into input order, and both layers output zeros at masked
    steps when they return sequences.

    Args:
      layer: a recurrent layer (`LSTM`, `GRU`, `SimpleRNN`, `RNN`).
      merge_mode: ``'concat'``, ``'sum'``, ``'mul'``, ``'ave'``, or None to
        return both outputs.
      backward_layer: an explicit backward layer; it must process the
        sequence in the other direction and agree on ``return_sequences``,
        ``return_state`` and ``stateful``; with ``'sum'``, ``'mul'`` or
        ``'ave'`` also on the output size (``'concat'`` and None take
        different sizes, as Keras does).

    Params are ``{'forward': ..., 'backward': ...}``. With ``return_state``
    the call returns ``[output, *forward_states, *backward_states]``
    (``[y, y_rev, *states]`` when merge_mode is None).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import LSTM
      >>> bi = Bidirectional(LSTM(4, return_sequences=True))
      >>> params = bi.init(jax.random.key(0), (None, 6, 3))
      >>> bi(params, jnp.ones((2, 6, 3))).shape
      (2, 6, 8)
    """

    layer: Any
    merge_mode: str | None = "concat"
    backward_layer: Any = None

    def __post_init__(self):
        check_one_of("merge_mode", self.merge_mode, MERGE_MODES)
        for name in (
            "go_backwards",
            "return_sequences",
            "return_state",
            "stateful",
            "zero_output_for_mask",
            "time_major",
        ):
            if not hasattr(self.layer, name):
                raise TypeError(
                    f"`layer` must be a recurrent layer, got "
                    f"{type(self.layer).__name__} (no `{name}`)."
                )
        backward = self.backward_layer
        if backward is None:
            backward = dataclasses.replace(self.layer, go_backwards=True)
        # Keras forces zero outputs at masked steps on both directions.
        backward = dataclasses.replace(
            backward, zero_output_for_mask=backward.return_sequences
        )
        object.__setattr__(self, "backward_layer", backward)
        forward = self.forward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(
                "The forward and backward layers must have "
                "different `go_backwards`, got "
                f"{forward.go_backwards} for both."
            )
        for name in (
            "stateful",
            "return_sequences",
            "return_state",
            "time_major",
        ):
            if getattr(forward, name) != getattr(backward, name):
                raise ValueError(
                    f"The forward and backward layers must agree on `{name}`, "
                    f"got {getattr(forward, name)} and "
                    f"{getattr(backward, name)}."
                )
        sizes = (_output_size(forward), _output_size(backward))
        if (
            self.merge_mode in ("sum", "mul", "ave")
            and None not in sizes
            and sizes[0] != sizes[1]
        ):
            # Keras builds this and fails in the merge, mid-call.
            raise ValueError(
                f"merge_mode={self.merge_mode!r} adds or multiplies the two "
                f"directions, so the forward and backward layers must have "
                f"the same output size, got {sizes[0]} and {sizes[1]}; give "
                f"`backward_layer` {sizes[0]} units or use "
                f"merge_mode='concat' or None."
            )

    @functools.cached_property
    def forward_layer(self) -> Any:
        """The forward layer (zero outputs at masked steps for sequences)."""
        return dataclasses.replace(
            self.layer, zero_output_for_mask=self.layer.return_sequences
        )

    @property
    def return_sequences(self) -> bool:
        """The wrapped layer's ``return_sequences``."""
        return self.layer.return_sequences

    @property
    def return_state(self) -> bool:
        """The wrapped layer's ``return_state``."""
        return self.layer.return_state

    @property
    def stateful(self) -> bool:
        """The wrapped layer's ``stateful``."""
        return self.layer.stateful

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None) -> Any:
        """The mask for the next layer: `mask` (B, T) when returning
        sequences, else None."""
        if mask is None or not self.return_sequences:
            return None
        return jnp.asarray(mask)

    def init(self, key: jax.Array, input_shape) -> dict[str, Any]:
        """Creates both directions' params.

        Args:
          key: PRNG key, split between the directions.
          input_shape: (B, T, D) (or the wrapped layer's layout), None for
            unknown sizes.

        Returns:
          ``{'forward': params, 'backward': params}``, each the wrapped
          layer's params.
        """
        forward_key, backward_key = jax.random.split(key)
        return {
            "forward": self.forward_layer.init(forward_key, input_shape),
            "backward": self.backward_layer.init(backward_key, input_shape),
        }

    def __call__(
        self,
        params: dict[str, Any],
        inputs: ArrayLike = REQUIRED,
        *,
        mask: ArrayLike | None = None,
        initial_state: Any = None,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> Any:
        """Runs both directions and merges them.

        Args:
          params: ``{'forward': ..., 'backward': ...}`` from `init`.
          inputs: (B, T, D) (or the wrapped layer's layout).
          mask: bool (B, T), True for valid steps.
          initial_state: a list, the forward layer's states then the
            backward layer's.
          key: PRNG key for dropout, split between the directions.
          training: turn dropout on.

        Returns:
          The merged output (``'concat'``: (..., 2H)); a list ``[y, y_rev]``
          when merge_mode is None; followed by the forward then backward
          states with ``return_state`` or ``stateful``.
        """
        check_layer_call(self, inputs)
        if not isinstance(params, dict) or set(params) != {
            "forward",
            "backward",
        }:
            raise ValueError(
                "Bidirectional params must be a dict with keys "
                "['backward', 'forward'], got "
                f"{sorted(params) if isinstance(params, dict) else type(params).__name__}."
            )
        forward_state = backward_state = None
        if initial_state is not None:
            states = jax.tree.leaves(initial_state)
            if len(states) % 2:
                raise ValueError(
                    "`initial_state` must hold the forward then "
                    "the backward states (an even count), got "
                    f"{len(states)} arrays."
                )
            half = len(states) // 2
            forward_state, backward_state = states[:half], states[half:]
        forward_key = backward_key = None
        if key is not None:
            forward_key, backward_key = jax.random.split(key)

        def separate():
            return self._call_each(
                params,
                inputs,
                mask,
                (forward_state, backward_state),
                (forward_key, backward_key),
                training,
            )

        fused = fused_call(
            self,
            params,
            inputs,
            mask,
            (forward_state, backward_state),
            (forward_key, backward_key),
            training,
            separate,
        )
        y, y_rev, states = separate() if fused is None else fused
        if self.merge_mode is None:
            output = [y, y_rev]
        else:
            output = [_MERGE[self.merge_mode](y, y_rev)]
        if states:
            return output + states
        return output if self.merge_mode is None else output[0]

    def _call_each(
        self,
        params: dict[str, Any],
        inputs: ArrayLike,
        mask: ArrayLike | None,
        states: tuple[Any, Any],
        keys: tuple[jax.Array | None, jax.Array | None],
        training: bool,
    ) -> tuple[jax.Array, jax.Array, list[jax.Array]]:
        """Each direction's layer on its own: (forward output, backward
        output in input order, the forward then backward states)."""
        y = self.forward_layer(
            params["forward"],
            inputs,
            mask=mask,
            initial_state=states[0],
            key=keys[0],
            training=training,
        )
        y_rev = self.backward_layer(
            params["backward"],
            inputs,
            mask=mask,
            initial_state=states[1],
            key=keys[1],
            training=training,
        )
        final_states = []
        if self.return_state or self.stateful:
            final_states = y[1:] + y_rev[1:]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            feature_axes = getattr(self.layer.cell, "input_ndim", 1)
            unbatched = np.ndim(inputs) == feature_axes + 1
            time_axis = 0 if (unbatched or self.layer.time_major) else 1
            y_rev = jnp.flip(y_rev, time_axis)
        return y, y_rev, final_states

    def output_shape(self, input_shape) -> Any:
        """Keras' ``compute_output_shape`` for the merged output (and states).

        Example:
          >>> from jaxrnn import GRU
          >>> Bidirectional(GRU(4, return_sequences=True)).output_shape((None, 6, 3))
          (None, 6, 8)
        """
        shapes = self.forward_layer.output_shape(input_shape)
        backward = self.backward_layer.output_shape(input_shape)
        with_states = isinstance(shapes, list)
        out, states = (shapes[0], shapes[1:]) if with_states else (shapes, [])
        out_rev, states_rev = (
            (backward[0], backward[1:]) if with_states else (backward, [])
        )
        # The sizes of both directions: Keras doubles the forward one, which
        # misreports a backward_layer with other units.
        if self.merge_mode == "concat":
            both = (out[-1], out_rev[-1])
            out = [out[:-1] + (None if None in both else sum(both),)]
        elif self.merge_mode is None:
            out = [out, out_rev]
        else:
            out = [out]
        if with_states:
            return out + states + states_rev
        return out if self.merge_mode is None else out[0]

    def param_count(self, input_shape) -> int:
        """The number of parameters of both directions, for inputs of
        `input_shape` (..., D)."""
        return count_params(self, input_shape)
