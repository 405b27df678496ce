"""Convolutional LSTM, Keras' ConvLSTMCell (gate order i, f, c, o).

The LSTM's matmuls become convolutions: the input convolution uses the
cell's ``strides``, ``padding`` and ``dilation_rate``; the recurrent one runs
over the hidden state with stride 1, ``'same'`` padding and no dilation, so
the state keeps the input convolution's output size (Keras 3,
``keras/src/layers/rnn/conv_lstm.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn import activations, initializers
from jaxrnn._validation import (
    batch_shape_of,
    check_positive_int,
)
from jaxrnn.activations import ActivationLike
from jaxrnn.cells._base import (
    DropoutMasks,
    KerasCell,
    init_common,
)
from jaxrnn.cells._conv_frames import ConvFrames, normalised
from jaxrnn.cells._convolution import (
    DATA_FORMATS as DATA_FORMATS,  # public before
)
from jaxrnn.cells._step import REQUIRED, projected_call


@dataclasses.dataclass(frozen=True)
class ConvLSTMCell(ConvFrames, KerasCell):
    """One convolutional LSTM step of any rank, Keras' ``ConvLSTMCell``.

    ``z = conv(x, kernel) + bias + conv_same(h, recurrent_kernel)`` split in
    four along the channels; ``c' = f * c + i * activation(z_c)``,
    ``h' = o * activation(c')`` with ``i, f, o = recurrent_activation(...)``.

    Shapes (channels_last): a frame x is `(..., *S, C)` with S the `rank`
    spatial sizes (ConvLSTM2D: rows, cols); h, c and the output are
    `(..., *S', F)` where F is `filters` and S' the input convolution's output
    size (S itself with ``padding='same'`` and stride 1). Leading axes are
    batch axes, possibly none. With ``data_format='channels_first'`` the
    channel axis comes first: `(..., C, *S)` and `(..., F, *S')`.

    Holds hyperparameters only; hashable, so it can be a static argument of
    `jax.jit`. Arguments and defaults are Keras'. Prefer `ConvLSTM1DCell`,
    `ConvLSTM2DCell`, `ConvLSTM3DCell`, which fix `rank`.

    Args:
      rank: 1, 2 or 3 spatial axes.
      filters: F, the channels of h and c, a positive int.
      kernel_size: an int or `rank` ints; both convolutions use it.
      strides: an int or `rank` ints, for the input convolution only.
      padding: ``'valid'`` or ``'same'`` (any case), for the input
        convolution only.
      data_format: ``'channels_last'`` (None means it) or
        ``'channels_first'``.
      dilation_rate: an int or `rank` ints, for the input convolution only;
        strides > 1 and dilation > 1 exclude each other (as in Keras).
      activation: for the candidate and the output; Keras name or callable.
      recurrent_activation: for the gates i, f, o.
      use_bias: whether params hold a ``bias`` (4F,).
      kernel_initializer: for ``kernel`` `(*kernel_size, C, 4F)`.
      recurrent_initializer: for ``recurrent_kernel``
        `(*kernel_size, F, 4F)`.
      bias_initializer: for ``bias`` (4F,).
      unit_forget_bias: start the forget-gate bias at one (Keras' default).
      dropout: rate in [0, 1) for the inputs. As in Keras, each gate has its
        own mask of the frame's full shape, one per sequence.
      recurrent_dropout: rate in [0, 1) for h, one mask per gate likewise.
      dtype: computation dtype; None promotes inputs and params.
      param_dtype: dtype of the arrays `init` creates.
      precision: `jax.lax.Precision` (or its name) for the convolutions.
      spatial_shape: the input frames' spatial size S, e.g. (rows, cols).
        Only `initial_carry` needs it (the carry's size depends on it), and
        so does `jaxrnn.rnn`, which asks the cell for a zero carry; the
        layers fill it in from their inputs. When set, inputs of any other
        spatial size are rejected.

    The carry is the tuple ``(h, c)``, each `(..., *S', F)`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = ConvLSTMCell(2, 4, 3, padding="same", spatial_shape=(8, 8))
      >>> params = cell.init(jax.random.key(0), 1)
      >>> (h, c), y = cell(params, cell.initial_carry(), jnp.ones((8, 8, 1)))
      >>> y.shape, params["kernel"].shape, cell.state_shape((8, 8))
      ((8, 8, 4), (3, 3, 1, 16), (8, 8, 4))
    """

    rank: int
    filters: int
    kernel_size: int | tuple[int, ...]
    strides: int | tuple[int, ...] = 1
    padding: str = "valid"
    data_format: str | None = None
    dilation_rate: int | tuple[int, ...] = 1
    activation: ActivationLike = "tanh"
    recurrent_activation: ActivationLike = "sigmoid"
    unit_forget_bias: bool = dataclasses.field(default=True, kw_only=True)
    spatial_shape: tuple[int, ...] | None = dataclasses.field(
        default=None, kw_only=True
    )

    gates = 4
    # The base class's recurrent_input/project_recurrent are for vectors;
    # a convolutional step has no split step (jaxrnn.protocols).
    split_step = False

    def __post_init__(self):
        self._normalise_frames()
        self._check_hyperparameters()
        if self.spatial_shape is not None:
            self.output_spatial_shape(self.spatial_shape)  # frames too small?

    def _check_hyperparameters(self) -> None:
        check_positive_int("filters", self.filters)
        self._check_frames()
        if not isinstance(self.unit_forget_bias, bool):
            raise TypeError(
                "`unit_forget_bias` must be a bool, got "
                f"{self.unit_forget_bias!r}."
            )
        self._check_common_fields()

    # --- Shapes ------------------------------------------------------------

    @property
    def input_ndim(self) -> int:
        """Feature axes of one step's input, rank + 1 (`jaxrnn.rnn` reads it)."""
        return self.rank + 1

    @property
    def state_size(self) -> list[int]:
        """Keras' cell protocol, in channels: [F, F] for (h, c)."""
        return [self.filters, self.filters]

    @property
    def output_size(self) -> int:
        """The output's channels, F."""
        return self.filters

    def param_shapes(self, input_dim: Any) -> dict[str, tuple[int, ...]]:
        """Keras' shapes: kernel `(*kernel_size, C, 4F)`, recurrent_kernel
        `(*kernel_size, F, 4F)`, bias (4F,); `input_dim` is C or a frame
        shape."""
        _, channels = self._split_frame(input_dim)
        gf = 4 * self.filters
        shapes: dict[str, tuple[int, ...]] = {
            "kernel": (*normalised(self.kernel_size), channels, gf),
            "recurrent_kernel": (
                *normalised(self.kernel_size),
                self.filters,
                gf,
            ),
        }
        if self.use_bias:
            shapes["bias"] = (gf,)
        return shapes

    # --- Params and carry --------------------------------------------------

    def init(self, key: jax.Array, input_dim: Any) -> dict[str, jax.Array]:
        """Creates the params for frames with C channels.

        Args:
          key: PRNG key.
          input_dim: C, or a whole frame shape such as (rows, cols, C),
            which is then checked against the cell.

        Returns:
          `{"kernel": (*kernel_size, C, 4F), "recurrent_kernel":
          (*kernel_size, F, 4F), "bias": (4F,)}`; with unit_forget_bias the
          f slice of bias is ones.
        """
        bias_init = (
            initializers.UnitForgetBias(self.bias_initializer, self.filters)
            if self.unit_forget_bias
            else None
        )
        return init_common(self, key, self.param_shapes(input_dim), bias_init)

    def initial_carry(
        self, batch_shape: int | tuple[int, ...] = (), dtype: Any = None
    ) -> tuple[jax.Array, jax.Array]:
        """``(h, c)``, zeros of shape `(*batch_shape, *S', F)` each
        (channels_first: `(*batch_shape, F, *S')`); an int B means (B,).

        dtype defaults to the cell's dtype (float32 when that is None).

        Raises:
          ValueError: the cell has no `spatial_shape`.
        """
        if self.spatial_shape is None:
            raise ValueError(
                f"{type(self).__name__}.initial_carry needs the frames' "
                "spatial size: build the cell with spatial_shape=S, e.g. "
                f"dataclasses.replace(cell, spatial_shape={(8,) * self.rank})"
                " (the ConvLSTM layers do it from their inputs)."
            )
        if dtype is None:
            dtype = jnp.float32 if self.dtype is None else self.dtype
        h = jnp.zeros(
            (
                *batch_shape_of(batch_shape),
                *self.state_shape(self.spatial_shape),
            ),
            dtype,
        )
        return h, jnp.zeros_like(h)

    # --- The step ----------------------------------------------------------

    def project_inputs(
        self,
        params: dict[str, jax.Array],
        xs: jax.Array,
        dropout: DropoutMasks | None = None,
    ) -> jax.Array:
        """Input half of the step: one convolution for any leading axes
        (`jaxrnn.rnn` folds a chunk of time steps into the batch).

        Args:
          params: the dict from `init`.
          xs: `(..., *S, C)` frames; a dropout mask `(*batch, *S, 4C)`
            broadcasts against the trailing axes (so a time axis may lead).
          dropout: from `dropout_masks`, or None.

        Returns:
          `(..., *S', 4F)`: ``conv(xs, kernel) + bias`` in the compute
          dtype.
        """
        dtype = self.compute_dtype(params, xs)
        xs, groups = self._per_gate(
            xs.astype(dtype), None if dropout is None else dropout.inputs
        )
        projected = self._conv(xs, params["kernel"], groups=groups)
        if "bias" in params:
            bias = params["bias"].astype(dtype)
            if self.data_format == "channels_first":
                bias = bias.reshape((-1,) + (1,) * self.rank)
            projected = projected + bias
        return projected

    def step_projected(
        self,
        params: dict[str, jax.Array],
        carry: tuple[jax.Array, jax.Array],
        projected: jax.Array,
        dropout: DropoutMasks | None = None,
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """Recurrent half of a step; `projected` is ``conv(x, kernel) + bias``.

        Args:
          params: the dict from `init`.
          carry: ``(h, c)``, each `(..., *S', F)`.
          projected: `(..., *S', 4F)`.
          dropout: from `dropout_masks`, or None.

        Returns:
          ((h', c'), h'); the carry keeps its dtype.
        """
        act = activations.get(self.activation)
        gate = activations.get(self.recurrent_activation)
        h, c = carry
        dtype = projected.dtype
        h_in, groups = self._per_gate(
            h.astype(dtype), None if dropout is None else dropout.recurrent
        )
        z = projected + self._conv(
            h_in, params["recurrent_kernel"], groups=groups, recurrent=True
        )
        z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=self._channel_axis)
        new_c = gate(z_f) * c.astype(dtype) + gate(z_i) * act(z_c)
        new_h = gate(z_o) * act(new_c)
        return (new_h.astype(h.dtype), new_c.astype(c.dtype)), new_h

    def __call__(
        self,
        params: dict[str, jax.Array] = REQUIRED,
        carry: tuple[jax.Array, jax.Array] = REQUIRED,
        x: ArrayLike = REQUIRED,
        *,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[Any, jax.Array]:
        """Advances one time step.

        Args:
          params: the dict from `init`.
          carry: ``(h, c)``, each `(..., *S', F)`.
          x: `(..., *S, C)` frame; leading axes are batch axes, possibly none.
          key: PRNG key for dropout; needed only when training with dropout.
            The masks are a function of the key, so passing the same key at
            every step reuses one set of masks per sequence, as Keras does.
          training: whether dropout is active.

        Returns:
          ((h', c'), h') with h' of shape `(..., *S', F)`.
        """
        return projected_call(
            self,
            params,
            carry,
            x,
            key=key,
            training=training,
            dropout=True,
            check_input=self._check_step_input,
        )


@dataclasses.dataclass(frozen=True)
class ConvLSTM1DCell(ConvLSTMCell):
    """A `ConvLSTMCell` over sequences of 1-D frames (steps, C).

    Takes `ConvLSTMCell`'s arguments but `rank`: ``ConvLSTM1DCell(filters,
    kernel_size, strides=1, padding='valid', data_format=None,
    dilation_rate=1, activation='tanh', recurrent_activation='sigmoid',
    *, use_bias=True, ..., spatial_shape=None)``. Frames (..., S, C),
    carry ``(h, c)`` each (..., S', F).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = ConvLSTM1DCell(4, 3, padding="same", spatial_shape=(10,))
      >>> params = cell.init(jax.random.key(0), 2)
      >>> (h, c), y = cell(params, cell.initial_carry((5,)), jnp.ones((5, 10, 2)))
      >>> y.shape, params["kernel"].shape
      ((5, 10, 4), (3, 2, 16))
    """

    rank: int = dataclasses.field(default=1, init=False, repr=False)


@dataclasses.dataclass(frozen=True)
class ConvLSTM2DCell(ConvLSTMCell):
    """A `ConvLSTMCell` over sequences of images (rows, cols, C).

    Takes `ConvLSTMCell`'s arguments but `rank`: ``ConvLSTM2DCell(filters,
    kernel_size, strides=1, padding='valid', data_format=None,
    dilation_rate=1, activation='tanh', recurrent_activation='sigmoid',
    *, use_bias=True, ..., spatial_shape=None)``. Frames
    (..., rows, cols, C), carry ``(h, c)`` each (..., rows', cols', F).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import rnn
      >>> cell = ConvLSTM2DCell(4, 3, spatial_shape=(8, 8))
      >>> params = cell.init(jax.random.key(0), 1)
      >>> ys, (h, c) = rnn(cell, params, jnp.ones((2, 5, 8, 8, 1)))
      >>> ys.shape, params["recurrent_kernel"].shape
      ((2, 5, 6, 6, 4), (3, 3, 4, 16))
    """

    rank: int = dataclasses.field(default=2, init=False, repr=False)


@dataclasses.dataclass(frozen=True)
class ConvLSTM3DCell(ConvLSTMCell):
    """A `ConvLSTMCell` over sequences of volumes (depth, rows, cols, C).

    Takes `ConvLSTMCell`'s arguments but `rank`: ``ConvLSTM3DCell(filters,
    kernel_size, ..., spatial_shape=None)``. Frames
    (..., depth, rows, cols, C), carry ``(h, c)`` each
    (..., depth', rows', cols', F).

    Example:
      >>> import jax
      >>> cell = ConvLSTM3DCell(2, (1, 3, 3), padding="same",
      ...                       spatial_shape=(4, 6, 6))
      >>> h, c = cell.initial_carry((3,))
      >>> h.shape
      (3, 4, 6, 6, 2)
    """

    rank: int = dataclasses.field(default=3, init=False, repr=False)
