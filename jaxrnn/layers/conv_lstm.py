"""Keras-shaped convolutional LSTM layers: ConvLSTM1D, ConvLSTM2D, ConvLSTM3D."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax
import numpy as np

from jaxrnn._rnn import rnn
from jaxrnn.cells._base import REQUIRED
from jaxrnn.cells.conv_lstm import (
    ConvLSTM1DCell,
    ConvLSTM2DCell,
    ConvLSTM3DCell,
    ConvLSTMCell,
)
from jaxrnn.layers._docs import cell_layer_doc
from jaxrnn.layers.recurrent import (
    RecurrentLayer,
    _LayerOptions,
    _shape_tuple,
    check_layer_call,
)
from jaxrnn.typing import Shape

# Bound per call from the inputs, so not a layer argument.
_NOT_LAYER_FIELDS = ("rank", "spatial_shape")


class ConvLSTMLayer(RecurrentLayer):
    """Behaviour shared by `ConvLSTM1D`, `ConvLSTM2D` and `ConvLSTM3D`.

    Inputs are sequences of frames: `(B, T, *S, C)` (time-major
    `(T, B, *S, C)`, unbatched `(T, *S, C)`; channels_first frames
    `(C, *S)`). The cell is built from the layer's fields and, at each
    call, bound to the inputs' spatial size S (its ``spatial_shape``),
    which fixes the states' size S'.
    """

    cell_type: ClassVar[type]

    @functools.cached_property
    def cell(self):
        """The cell the layer runs (without a ``spatial_shape``)."""
        names = [
            f.name
            for f in dataclasses.fields(self.cell_type)
            if f.name not in _NOT_LAYER_FIELDS
        ]
        return self.cell_type(**{n: getattr(self, n) for n in names})

    def __post_init__(self):
        self._check_flags()
        cell = self.cell  # builds and validates the cell now, not mid-trace
        # Keras' spellings normalised as the cell has them (kernel_size=3 is
        # (3, 3), 'SAME' is 'same'), so equal layers compare and hash equal.
        for f in dataclasses.fields(self.cell_type):
            if f.name not in _NOT_LAYER_FIELDS:
                object.__setattr__(self, f.name, getattr(cell, f.name))

    def _layout(
        self, input_shape: Shape, name: str = "input_shape"
    ) -> tuple[tuple, tuple, tuple]:
        """Checks a shape; returns (batch, steps, frame) as tuples."""
        shape = _shape_tuple(
            input_shape, "(None, T, *S, C)", "(None, None, *S, {})"
        )
        n = self.cell.rank + 1
        frame = (
            "(*S, C)"
            if self.cell.data_format == "channels_last"
            else "(C, *S)"
        )
        if len(shape) not in (n + 1, n + 2):
            lead = "(T, B)" if self.time_major else "(B, T)"
            raise ValueError(
                f"`{name}` must be {lead} + {frame} or unbatched (T,) + "
                f"{frame} with {self.cell.rank} spatial axes S (rank {n + 2} "
                f"or {n + 1}), got {shape} (rank {len(shape)})."
            )
        channels = shape[self.cell._channel_axis]
        if not isinstance(channels, (int, np.integer)) or channels <= 0:
            raise ValueError(
                f"`{name}` must have a known channel count C "
                f"in its frames {frame}, got {shape}."
            )
        if len(shape) == n + 1:
            return (), shape[:1], shape[1:]
        if self.time_major:
            return shape[1:2], shape[:1], shape[2:]
        return shape[:1], shape[1:2], shape[2:]

    def _spatial(self, frame: tuple) -> tuple:
        if self.cell.data_format == "channels_last":
            return frame[:-1]
        return frame[1:]

    def init(self, key: jax.Array, input_shape: Shape) -> dict[str, jax.Array]:
        """Creates the cell's params for inputs of `input_shape`.

        Args:
          key: PRNG key.
          input_shape: `(B, T, *S, C)` (time-major `(T, B, *S, C)`) or
            `(T, *S, C)`; None for unknown batch, time or spatial sizes
            (when all spatial sizes are known, they are checked against
            the kernel).

        Returns:
          `{"kernel": (*kernel_size, C, 4F), "recurrent_kernel":
          (*kernel_size, F, 4F), "bias": (4F,)}`.
        """
        _, _, frame = self._layout(input_shape)
        known = all(isinstance(n, (int, np.integer)) for n in frame)
        return self.cell.init(
            key, frame if known else frame[self.cell._channel_axis]
        )

    def _carry_from_state(self, initial_state: Any) -> Any:
        # rnn checks the shapes against the bound cell's zero carry.
        if initial_state is None:
            return None
        states = jax.tree.leaves(initial_state)
        if len(states) != 2:
            raise ValueError(
                f"`initial_state` must hold 2 state arrays [h, c] "
                f"for {type(self).__name__}, got {len(states)}."
            )
        return tuple(states)

    def __call__(
        self,
        params: dict[str, jax.Array],
        inputs: jax.Array = REQUIRED,
        *,
        mask: jax.Array | None = None,
        initial_state: Any = None,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> Any:
        """Runs the layer; returns what Keras returns.

        Args:
          params: from `init`.
          inputs: `(B, T, *S, C)`, `(T, B, *S, C)` with
            ``time_major``, or unbatched `(T, *S, C)`.
          mask: bool (B, T) (time-major (T, B), unbatched (T,)), True for
            valid steps.
          initial_state: ``[h, c]``, each `(B, *S', F)`; zeros when None.
          key: PRNG key for dropout (training only).
          training: turn dropout on.

        Returns:
          The output, `(B, T, *S', F)` with ``return_sequences`` else
          `(B, *S', F)`; or ``[output, h, c]`` with ``return_state`` or
          ``stateful``.
        """
        check_layer_call(self, inputs)
        _, _, frame = self._layout(np.shape(inputs), "inputs")
        self._check_inputs_rank(np.shape(inputs), self.cell.input_ndim)
        inputs = self._float_inputs(params, inputs)  # int frames, as Keras
        cell = dataclasses.replace(
            self.cell, spatial_shape=self._spatial(frame)
        )
        outputs, (h, c) = rnn(
            cell,
            params,
            inputs,
            initial_carry=self._carry_from_state(initial_state),
            mask=mask,
            time_major=self.time_major,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            remat=self.remat,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
            key=key,
            training=training,
        )
        if self.return_state or self.stateful:
            return [outputs, h, c]
        return outputs

    def output_shape(self, input_shape: Shape) -> Any:
        """Keras' ``compute_output_shape``.

        Args:
          input_shape: `(B, T, *S, C)`, `(T, B, *S, C)` with
            ``time_major``, or `(T, *S, C)`; None for unknown sizes.

        Returns:
          The output shape, `(B, T, *S', F)` or `(B, *S', F)`; with
          ``return_state`` or ``stateful`` a list of it and the shapes of h
          and c, `(B, *S', F)` each.
        """
        batch, steps, frame = self._layout(input_shape)
        state = self.cell.state_shape(self._spatial(frame))
        if not self.return_sequences:
            out = batch + state
        elif self.time_major:
            out = steps + batch + state
        else:
            out = batch + steps + state
        if not (self.return_state or self.stateful):
            return out
        return [out, batch + state, batch + state]


def _conv_layer(name: str, cell_type: type, doc: str) -> type:
    """A frozen dataclass with `cell_type`'s fields (but rank and
    spatial_shape) and `RNN`'s flags, so a layer takes exactly Keras'
    arguments."""
    fields = []
    for f in dataclasses.fields(cell_type):
        if f.name in _NOT_LAYER_FIELDS:
            continue
        default = (
            {} if f.default is dataclasses.MISSING else {"default": f.default}
        )
        fields.append(
            (f.name, f.type, dataclasses.field(kw_only=f.kw_only, **default))
        )
    return dataclasses.make_dataclass(
        name,
        fields,
        bases=(_LayerOptions, ConvLSTMLayer),
        frozen=True,
        namespace={
            "cell_type": cell_type,
            "__doc__": doc,
            "__module__": __name__,
        },
    )


_PARAMS_DOC = """
    Params: ``{'kernel': (*kernel_size, C, 4F), 'recurrent_kernel':
    (*kernel_size, F, 4F), 'bias': (4F,)}``, gates in Keras' order i, f, c,
    o. The recurrent convolution always pads 'same' with stride 1.
"""


def _conv_doc(summary: str, shapes: str, example: str) -> str:
    return cell_layer_doc(
        summary,
        ConvLSTMCell,
        shapes + _PARAMS_DOC,
        example,
        skip=_NOT_LAYER_FIELDS,
    )


ConvLSTM1D = _conv_layer(
    "ConvLSTM1D",
    ConvLSTM1DCell,
    _conv_doc(
        """Keras' ``ConvLSTM1D``: a `ConvLSTM1DCell` over sequences of 1-D frames.

    Takes `ConvLSTMCell`'s arguments but ``rank`` and ``spatial_shape``,
    with its defaults, and `RNN`'s flags.
    """,
        """
    Inputs `(B, T, S, C)` (unbatched `(T, S, C)`); outputs `(B, T, S', F)`
    with ``return_sequences``, else `(B, S', F)`; ``[output, h, c]`` with
    ``return_state``.
    """,
        """
    >>> import jax, jax.numpy as jnp
    >>> layer = ConvLSTM1D(4, 3, return_sequences=True)
    >>> params = layer.init(jax.random.key(0), (None, 6, 10, 2))
    >>> layer(params, jnp.ones((2, 6, 10, 2))).shape
    (2, 6, 8, 4)
    """,
    ),
)

ConvLSTM2D = _conv_layer(
    "ConvLSTM2D",
    ConvLSTM2DCell,
    _conv_doc(
        """Keras' ``ConvLSTM2D``: a `ConvLSTM2DCell` over sequences of images.

    Takes `ConvLSTMCell`'s arguments but ``rank`` and ``spatial_shape``,
    with its defaults, and `RNN`'s flags.
    """,
        """
    Inputs `(B, T, rows, cols, C)` (unbatched `(T, rows, cols, C)`);
    outputs `(B, T, rows', cols', F)` with ``return_sequences``, else
    `(B, rows', cols', F)`; ``[output, h, c]`` with ``return_state``.
    """,
        """
    >>> import jax, jax.numpy as jnp
    >>> layer = ConvLSTM2D(4, 3, padding="same", return_state=True)
    >>> params = layer.init(jax.random.key(0), (None, 5, 8, 8, 1))
    >>> out, h, c = layer(params, jnp.ones((2, 5, 8, 8, 1)))
    >>> out.shape, c.shape, layer.param_count((None, 5, 8, 8, 1))
    ((2, 8, 8, 4), (2, 8, 8, 4), 736)
    """,
    ),
)

ConvLSTM3D = _conv_layer(
    "ConvLSTM3D",
    ConvLSTM3DCell,
    _conv_doc(
        """Keras' ``ConvLSTM3D``: a `ConvLSTM3DCell` over sequences of volumes.

    Takes `ConvLSTMCell`'s arguments but ``rank`` and ``spatial_shape``,
    with its defaults, and `RNN`'s flags.
    """,
        """
    Inputs `(B, T, depth, rows, cols, C)`; outputs
    `(B, T, depth', rows', cols', F)` with ``return_sequences``, else
    `(B, depth', rows', cols', F)`; ``[output, h, c]`` with
    ``return_state``.
    """,
        """
    >>> ConvLSTM3D(2, 3).output_shape((None, 4, 5, 6, 7, 1))
    (None, 3, 4, 5, 2)
    """,
    ),
)
