"""Keras-shaped convolutional LSTM layers: ConvLSTM1D, ConvLSTM2D, ConvLSTM3D."""

from __future__ import annotations

import dataclasses

from jaxrnn.activations import ActivationLike
from jaxrnn.cells.conv_lstm import (
    ConvLSTM1DCell,
    ConvLSTM2DCell,
    ConvLSTM3DCell,
    ConvLSTMCell,
)
from jaxrnn.layers._docs import compose_doc
from jaxrnn.layers.recurrent import KerasCellLayer

# The params paragraph the three layers share.
_PARAMS = """\
Params: ``{'kernel': (*kernel_size, C, 4F), 'recurrent_kernel':
(*kernel_size, F, 4F), 'bias': (4F,)}``, gates in Keras' order i, f, c,
o. The recurrent convolution always pads 'same' with stride 1."""


def _conv_doc(doc: str | None) -> str | None:
    # The cell's arguments but those the layer fixes (rank) or binds to
    # its inputs at each call (spatial_shape).
    return compose_doc(
        doc, ConvLSTMCell, ("rank", "spatial_shape"), CONV_PARAMS=_PARAMS
    )


@dataclasses.dataclass(frozen=True)
class ConvLSTMLayer(KerasCellLayer):
    """Behaviour shared by `ConvLSTM1D`, `ConvLSTM2D` and `ConvLSTM3D`:
    `ConvLSTMCell`'s arguments but ``rank`` and ``spatial_shape``, in its
    order, and `RNN`'s body, which reads sequences of frames.

    Inputs are `(B, T, *S, C)` (time-major `(T, B, *S, C)`, unbatched
    `(T, *S, C)`; channels_first frames `(C, *S)`). The cell is built from
    the layer's fields and, at each call, bound to the inputs' spatial size
    S (its ``spatial_shape``), which fixes the states' size S'.
    """

    filters: int
    kernel_size: int | tuple[int, ...]
    strides: int | tuple[int, ...] = 1
    padding: str = "valid"
    data_format: str | None = None
    dilation_rate: int | tuple[int, ...] = 1
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    unit_forget_bias: bool = dataclasses.field(default=True, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        # Keras' spellings normalised as the cell has them (kernel_size=3 is
        # (3, 3), 'SAME' is 'same'), so equal layers compare and hash equal.
        for name in self._cell_arguments():
            object.__setattr__(self, name, getattr(self.cell, name))


@dataclasses.dataclass(frozen=True)
class ConvLSTM1D(ConvLSTMLayer):
    """Keras' ``ConvLSTM1D``: a `ConvLSTM1DCell` over sequences of 1-D frames.

    Takes `ConvLSTMCell`'s arguments but ``rank`` and ``spatial_shape``,
    with its defaults, and `RNN`'s flags.

    Args:
      {CELL_ARGS}
      {RECURRENT_FLAGS}

    Inputs `(B, T, S, C)` (unbatched `(T, S, C)`); outputs `(B, T, S', F)`
    with ``return_sequences``, else `(B, S', F)`; ``[output, h, c]`` with
    ``return_state``.

    {CONV_PARAMS}

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = ConvLSTM1D(4, 3, return_sequences=True)
      >>> params = layer.init(jax.random.key(0), (None, 6, 10, 2))
      >>> layer(params, jnp.ones((2, 6, 10, 2))).shape
      (2, 6, 8, 4)
    """

    cell_type = ConvLSTM1DCell
    __doc__ = _conv_doc(__doc__)


@dataclasses.dataclass(frozen=True)
class ConvLSTM2D(ConvLSTMLayer):
    """Keras' ``ConvLSTM2D``: a `ConvLSTM2DCell` over sequences of images.

    Takes `ConvLSTMCell`'s arguments but ``rank`` and ``spatial_shape``,
    with its defaults, and `RNN`'s flags.

    Args:
      {CELL_ARGS}
      {RECURRENT_FLAGS}

    Inputs `(B, T, rows, cols, C)` (unbatched `(T, rows, cols, C)`);
    outputs `(B, T, rows', cols', F)` with ``return_sequences``, else
    `(B, rows', cols', F)`; ``[output, h, c]`` with ``return_state``.

    {CONV_PARAMS}

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = ConvLSTM2D(4, 3, padding="same", return_state=True)
      >>> params = layer.init(jax.random.key(0), (None, 5, 8, 8, 1))
      >>> out, h, c = layer(params, jnp.ones((2, 5, 8, 8, 1)))
      >>> out.shape, c.shape, layer.param_count((None, 5, 8, 8, 1))
      ((2, 8, 8, 4), (2, 8, 8, 4), 736)
    """

    cell_type = ConvLSTM2DCell
    __doc__ = _conv_doc(__doc__)


@dataclasses.dataclass(frozen=True)
class ConvLSTM3D(ConvLSTMLayer):
    """Keras' ``ConvLSTM3D``: a `ConvLSTM3DCell` over sequences of volumes.

    Takes `ConvLSTMCell`'s arguments but ``rank`` and ``spatial_shape``,
    with its defaults, and `RNN`'s flags.

    Args:
      {CELL_ARGS}
      {RECURRENT_FLAGS}

    Inputs `(B, T, depth, rows, cols, C)`; outputs
    `(B, T, depth', rows', cols', F)` with ``return_sequences``, else
    `(B, depth', rows', cols', F)`; ``[output, h, c]`` with
    ``return_state``.

    {CONV_PARAMS}

    Example:
      >>> ConvLSTM3D(2, 3).output_shape((None, 4, 5, 6, 7, 1))
      (None, 3, 4, 5, 2)
    """

    cell_type = ConvLSTM3DCell
    __doc__ = _conv_doc(__doc__)
