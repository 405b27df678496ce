"""Keras' recurrent layers SimpleRNN, LSTM and GRU: a cell under `RNN`,
built from the layer's own fields."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

from jaxrnn._cudnn import check_use_cudnn
from jaxrnn.activations import ActivationLike
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.initializers import InitializerLike
from jaxrnn.layers._common import check_layer_call, count_params
from jaxrnn.layers._docs import compose_doc
from jaxrnn.layers.rnn import RNN, RecurrentFlags, RecurrentLayer

# RNN, RecurrentLayer, check_layer_call and count_params stay importable
# from here, where they were before jaxrnn/layers/rnn.py and _common.py.
__all__ = [
    "GRU",
    "KerasCellLayer",
    "LSTM",
    "RNN",
    "RecurrentLayer",
    "SimpleRNN",
    "check_layer_call",
    "count_params",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class KerasCellLayer(RecurrentLayer):
    """A layer whose fields are `RNN`'s flags and its cell's arguments
    (Keras' ``LSTM(units, ...)``); the cell is built from them.

    The keyword arguments every built-in cell takes are fields here, in
    `KerasCell`'s order; a subclass adds its cell's own fields, in the
    cell's order, and names the cell in ``cell_type``.
    """

    use_bias: bool = True
    kernel_initializer: InitializerLike = "glorot_uniform"
    recurrent_initializer: InitializerLike = "orthogonal"
    bias_initializer: InitializerLike = "zeros"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None

    cell_type: ClassVar[type]
    # Fields of the layer alone, not arguments of its cell.
    layer_fields: ClassVar[tuple[str, ...]] = ()

    def _cell_arguments(self) -> dict[str, Any]:
        """The layer's fields but the flags: its cell's arguments."""
        flags = {f.name for f in dataclasses.fields(RecurrentFlags)}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in flags and f.name not in self.layer_fields
        }

    @functools.cached_property
    def cell(self) -> Any:
        """The cell the layer runs, built from the layer's fields but the
        flags (a ConvLSTM layer's without a ``spatial_shape``: the layer
        binds it to the inputs at each call)."""
        return self.cell_type(**self._cell_arguments())

    def __post_init__(self):
        super().__post_init__()
        _ = self.cell  # builds and validates the cell now, not mid-trace


@dataclasses.dataclass(frozen=True)
class SimpleRNN(KerasCellLayer):
    """Keras' ``SimpleRNN``: a `SimpleRNNCell` under `RNN`.

    Takes `SimpleRNNCell`'s arguments, with its defaults, and `RNN`'s flags.

    Args:
      {CELL_ARGS}
      {RECURRENT_FLAGS}

    Inputs `(B, T, D)` (`(T, B, D)` with ``time_major``, or unbatched
    `(T, D)`); outputs `(B, T, H)` with ``return_sequences``, else
    `(B, H)`; ``[output, h]`` with ``return_state``. Params:
    ``{'kernel': (D, H), 'recurrent_kernel': (H, H), 'bias': (H,)}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = SimpleRNN(4, return_sequences=True)
      >>> params = layer.init(jax.random.key(0), (None, 5, 3))
      >>> layer(params, jnp.ones((2, 5, 3))).shape
      (2, 5, 4)
    """

    units: int
    activation: ActivationLike = "tanh"

    cell_type = SimpleRNNCell
    __doc__ = compose_doc(__doc__, SimpleRNNCell)


@dataclasses.dataclass(frozen=True)
class LSTM(KerasCellLayer):
    """Keras' ``LSTM``: an `LSTMCell` under `RNN`.

    Takes `LSTMCell`'s arguments, with its defaults, `RNN`'s flags and
    Keras' ``use_cudnn``.

    Args:
      {CELL_ARGS}
      use_cudnn: ``'auto'`` (Keras' default) runs the layer as one cuDNN
        call on a CUDA GPU where cuDNN computes it (tanh and sigmoid, a
        bias, no recurrent dropout in training, ``unroll=False``, no
        `remat`, float32, and no mask or a right-padded one), the scan
        elsewhere; True insists (a ValueError naming why where it cannot
        apply, on a CPU for one); False never. See `jaxrnn.rnn`.
      {RECURRENT_FLAGS}

    Inputs `(B, T, D)` (`(T, B, D)` with ``time_major``, or unbatched
    `(T, D)`); outputs `(B, T, H)` with ``return_sequences``, else
    `(B, H)`; ``[output, h, c]`` with ``return_state``. Params:
    ``{'kernel': (D, 4H), 'recurrent_kernel': (H, 4H), 'bias': (4H,)}``,
    gates in Keras' order i, f, c, o.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = LSTM(4, return_state=True)
      >>> params = layer.init(jax.random.key(0), (None, 5, 3))
      >>> out, h, c = layer(params, jnp.ones((2, 5, 3)))
      >>> out.shape, c.shape
      ((2, 4), (2, 4))
    """

    units: int
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    unit_forget_bias: bool = dataclasses.field(default=True, kw_only=True)
    use_cudnn: bool | str = dataclasses.field(default="auto", kw_only=True)

    cell_type = LSTMCell
    layer_fields = ("use_cudnn",)

    def __post_init__(self):
        check_use_cudnn(self.use_cudnn)
        super().__post_init__()

    __doc__ = compose_doc(__doc__, LSTMCell)


@dataclasses.dataclass(frozen=True)
class GRU(KerasCellLayer):
    """Keras' ``GRU``: a `GRUCell` under `RNN` (``reset_after=True`` by default).

    Takes `GRUCell`'s arguments, with its defaults, and `RNN`'s flags.

    Args:
      {CELL_ARGS}
      {RECURRENT_FLAGS}

    Inputs `(B, T, D)` (`(T, B, D)` with ``time_major``, or unbatched
    `(T, D)`); outputs `(B, T, H)` with ``return_sequences``, else
    `(B, H)`; ``[output, h]`` with ``return_state``. Params:
    ``{'kernel': (D, 3H), 'recurrent_kernel': (H, 3H), 'bias': (2, 3H)}``
    (bias `(3H,)` without ``reset_after``), gates in Keras' order z, r, h.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = GRU(4, return_sequences=True)
      >>> params = layer.init(jax.random.key(0), (None, 5, 3))
      >>> layer(params, jnp.ones((2, 5, 3))).shape
      (2, 5, 4)
    """

    units: int
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    reset_after: bool = dataclasses.field(default=True, kw_only=True)

    cell_type = GRUCell
    __doc__ = compose_doc(__doc__, GRUCell)
