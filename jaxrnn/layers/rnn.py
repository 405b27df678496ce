"""Keras' ``RNN`` layer: a cell run over time, and the body every recurrent
layer shares (shape checks, ``init``, the call, ``output_shape``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrnn._rnn import rnn
from jaxrnn._validation import check_bool
from jaxrnn.cells._base import REQUIRED, wider_float
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.layers import _frames
from jaxrnn.layers._common import check_layer_call, count_params, shape_tuple
from jaxrnn.layers._docs import compose_doc
from jaxrnn.typing import Shape

# A shape as (batch, steps, features): () or (B,), (T,), and D or a frame.
_Layout = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecurrentFlags:
    """`RNN`'s flags, which every recurrent layer takes (documented once,
    in jaxrnn/layers/_docs.py)."""

    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False
    time_major: bool = False
    zero_output_for_mask: bool = False
    remat: bool = False

    def __post_init__(self):
        for field in dataclasses.fields(RecurrentFlags):
            if field.name != "unroll":  # rnn also takes an int factor
                check_bool(field.name, getattr(self, field.name))


class RecurrentLayer(RecurrentFlags):
    """Behaviour shared by `RNN`, `SimpleRNN`, `LSTM`, `GRU` and the
    ConvLSTM layers: a subclass provides ``cell``."""

    # A dataclass field (`RNN`) or built from the layer's fields (`LSTM`);
    # declared here, not a field of this class.
    cell: Any

    def _layout(self, shape: tuple[Any, ...], name: str) -> _Layout:
        """Checks the rank of `shape` (inputs or an input_shape); returns
        it split into (batch, steps, features)."""
        axes = _frames.feature_axes(self.cell)
        if len(shape) not in (axes + 1, axes + 2):
            raise self._rank_error(shape, name, axes)
        features = shape[len(shape) - axes :]
        if len(shape) == axes + 1:
            return (), shape[:1], features
        if self.time_major:
            return shape[1:2], shape[:1], features
        return shape[:1], shape[1:2], features

    def _described_layouts(self) -> tuple[str, str]:
        """The batched and unbatched layouts in letters, e.g. (B, T, D)
        and (T, D), for error messages."""
        letters = _frames.describe(self.cell)
        lead = "T, B" if self.time_major else "B, T"
        return f"({lead}, {letters})", f"(T, {letters})"

    def _rank_error(self, shape: tuple, name: str, axes: int) -> ValueError:
        batched, unbatched = self._described_layouts()
        if axes > 1:
            what = (
                f"{axes - 1} spatial axes S"
                if "*S" in batched
                else f"{axes} feature axes"
            )
            return ValueError(
                f"`{name}` must be {batched} or unbatched {unbatched} with "
                f"{what} (rank {axes + 2} or {axes + 1}), got {shape} (rank "
                f"{len(shape)})."
            )
        if name == "inputs":
            return ValueError(
                f"`inputs` must have shape {batched} or unbatched "
                f"{unbatched}, got {shape} (rank {len(shape)})."
            )
        return ValueError(
            "`input_shape` must be (B, T, D), (T, B, D) or "
            f"unbatched (T, D) with None for unknown sizes, got "
            f"{shape}."
        )

    def _input_layout(self, input_shape: Shape) -> _Layout:
        """`_layout` of an `input_shape`, whose feature size must be known."""
        letters = _frames.describe(self.cell)
        # The likely fix for a bare int: that many features, or channels.
        fix = letters.replace("D", "{}").replace("C", "{}")
        shape = shape_tuple(
            input_shape, f"(None, T, {letters})", f"(None, None, {fix})"
        )
        layout = self._layout(shape, "input_shape")
        _frames.check_features(self.cell, shape, "input_shape")
        return layout

    def init(self, key: jax.Array, input_shape: Shape) -> Any:
        """Creates the cell's params for inputs of `input_shape`.

        Args:
          key: PRNG key.
          input_shape: (B, T, D) (time-major (T, B, D)) or (T, D); None for
            unknown batch or time sizes. For ConvLSTM cells D is a frame
            `(*S, C)` whose spatial sizes may be None too (when all are
            known, they are checked against the kernel).

        Returns:
          The cell's params (a dict with Keras' names, or a list for stacked
          cells).
        """
        _, _, features = self._input_layout(input_shape)
        return self.cell.init(key, _frames.input_dim(self.cell, features))

    def _check_call_inputs(self, shape: tuple) -> None:
        """Refuses inputs of no known layout, and unbatched inputs to a
        stateful layer: Keras' stateful layers read batches, and a (B, D)
        array there is most likely one step of B streams missing its time
        axis, which would silently run as one sequence of B steps."""
        batch, _, _ = self._layout(shape, "inputs")
        if self.stateful and not batch:
            batched, unbatched = self._described_layouts()
            fix = "x[None]" if self.time_major else "x[:, None]"
            raise ValueError(
                f"A stateful {type(self).__name__} reads batches "
                f"{batched}, as Keras' stateful layers do; got "
                f"{shape}, which would run as one unbatched sequence "
                f"{unbatched}. For one step of a batch of streams add a "
                f"time axis, e.g. {fix}; for one unbatched sequence (under "
                "jax.vmap, say) use return_state=True, which returns the "
                "same states."
            )

    def _float_inputs(self, params: Any, inputs: Any) -> Any:
        """Integer `inputs` cast to the float dtype the layer computes in,
        as Keras' int inputs promote with its float kernel (Keras'
        bidirectional_test.py::test_output_shape feeds ints); other inputs
        unchanged, for `rnn` to check.

        The dtype: the cell's `dtype` (the first cell's, stacked), else the
        float params' (the first cell's, stacked), else float32.
        """
        dtype = getattr(inputs, "dtype", None)
        if dtype is None:
            dtype = np.asarray(inputs).dtype
        if not jnp.issubdtype(dtype, jnp.integer):
            return inputs
        stacked = isinstance(self.cell, StackedCells)
        first = self.cell.cells[0] if stacked else self.cell
        target = getattr(first, "dtype", None)
        if target is None:
            first_params = (
                params[0]
                if stacked and isinstance(params, (list, tuple))
                else params
            )
            floats = [
                leaf.dtype
                for leaf in jax.tree.leaves(first_params)
                if jnp.issubdtype(
                    getattr(leaf, "dtype", np.int8), jnp.floating
                )
            ]
            target = floats[0] if floats else jnp.float32
            for other in floats[1:]:
                target = wider_float(target, other)
        return jnp.asarray(inputs).astype(target)

    def _carry_from_state(
        self, cell: Any, initial_state: Any, shape: tuple
    ) -> Any:
        """`initial_state` (Keras' list of states) as `cell`'s carry for
        inputs of `shape`, each state checked against the zero carry."""
        if initial_state is None:
            return None
        batch, _, _ = self._layout(shape, "inputs")
        states = jax.tree.leaves(initial_state)
        carry = jax.eval_shape(lambda: cell.initial_carry(batch))
        treedef = jax.tree.structure(carry)
        if len(states) != treedef.num_leaves:
            raise ValueError(
                f"`initial_state` must hold {treedef.num_leaves} "
                f"state array(s) for {type(cell).__name__}, "
                f"got {len(states)}."
            )
        for i, (state, want) in enumerate(zip(states, jax.tree.leaves(carry))):
            got = tuple(np.shape(state))
            if got != want.shape:
                raise self._state_error(cell, i, got, want.shape, shape)
        return jax.tree.unflatten(treedef, states)

    def _state_error(
        self, cell: Any, i: int, got: tuple, want: tuple, inputs_shape: tuple
    ) -> ValueError:
        batch, _, _ = self._layout(inputs_shape, "inputs")
        if not batch and len(got) == len(want) + 1:
            # Unbatched inputs (T, D); batched states say the caller meant
            # a batch of single steps.
            batched, unbatched = self._described_layouts()
            fix = "x[None]" if self.time_major else "x[:, None]"
            return ValueError(
                f"`initial_state[{i}]` is batched, {got}, but `inputs` "
                f"{inputs_shape} has no time axis and reads as one "
                f"unbatched sequence {unbatched}: batched inputs must be "
                f"{batched}; add a time axis, e.g. {fix}."
            )
        return ValueError(
            f"`initial_state[{i}]` must have shape {want} for inputs "
            f"{inputs_shape}, got {got}: each state has the shape of its "
            f"array in {type(cell).__name__}.initial_carry(batch_shape)."
        )

    def __call__(
        self,
        params: Any,
        inputs: ArrayLike = REQUIRED,
        *,
        mask: ArrayLike | None = None,
        initial_state: Any = None,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> Any:
        """Runs the layer; returns what Keras returns.

        Args:
          params: from `init`.
          inputs: (B, T, D), (T, B, D) with ``time_major``, or (T, D), D
            being a frame `(*S, C)` for ConvLSTM cells; floating, or
            integers, cast to the compute dtype as in Keras.
          mask: bool (B, T) (time-major (T, B), unbatched (T,)), True for
            valid steps.
          initial_state: a state array or a list of them in Keras' order
            (LSTM: [h, c]; ConvLSTM: [h, c], each `(B, *S', F)`); zeros
            when None.
          key: PRNG key for dropout (training only).
          training: turn dropout on.

        Returns:
          The output, (B, T, H) with ``return_sequences`` else (B, H)
          (ConvLSTM: `(B, T, *S', F)` or `(B, *S', F)`); or
          ``[output, *states]`` with ``return_state`` or ``stateful`` (the
          states in Keras' order, ready to be passed back as
          ``initial_state``).
        """
        check_layer_call(self, inputs)
        shape = tuple(np.shape(inputs))
        self._check_call_inputs(shape)
        inputs = self._float_inputs(params, inputs)
        cell = _frames.bind(self.cell, self._layout(shape, "inputs")[2])
        outputs, carry = rnn(
            cell,
            params,
            inputs,
            initial_carry=self._carry_from_state(cell, initial_state, shape),
            mask=mask,
            time_major=self.time_major,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            remat=self.remat,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
            key=key,
            training=training,
            use_cudnn=getattr(self, "use_cudnn", False),
        )
        if self.return_state or self.stateful:
            return [outputs, *jax.tree.leaves(carry)]
        return outputs

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None) -> Any:
        """The mask for the next layer: `mask` (B, T) when returning
        sequences, else None."""
        if mask is None or not self.return_sequences:
            return None
        return jnp.asarray(mask)

    def _output_size(self) -> tuple[int]:
        output_size = getattr(self.cell, "output_size", None)
        if not isinstance(output_size, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__}.output_shape needs the "
                f"cell's `output_size` (the int feature size of "
                f"its output); {type(self.cell).__name__} has "
                f"{output_size!r}."
            )
        return (int(output_size),)

    def output_shape(self, input_shape: Shape) -> Any:
        """Keras' ``compute_output_shape``.

        Args:
          input_shape: (B, T, D), (T, B, D) with ``time_major``, or (T, D),
            D being a frame `(*S, C)` for ConvLSTM cells; None for unknown
            sizes.

        Returns:
          The output shape, e.g. (B, T, H) or (B, H) (ConvLSTM:
          `(B, T, *S', F)` or `(B, *S', F)`); with ``return_state`` or
          ``stateful`` a list of it and each state's shape, e.g. (B, H).

        Example:
          >>> from jaxrnn import LSTM
          >>> LSTM(8, return_state=True).output_shape((None, 20, 4))
          [(None, 8), (None, 8), (None, 8)]
        """
        batch, steps, features = self._input_layout(input_shape)
        owner = f"{type(self).__name__}.output_shape"
        if _frames.feature_axes(self.cell) > 1:
            size, states = _frames.frame_shapes(self.cell, features, owner)
        else:
            size, states = self._output_size(), None
        if not self.return_sequences:
            out = batch + size
        elif self.time_major:
            out = steps + batch + size
        else:
            out = batch + steps + size
        if not (self.return_state or self.stateful):
            return out
        if states is None:
            carry = jax.eval_shape(lambda: self.cell.initial_carry(()))
            states = [leaf.shape for leaf in jax.tree.leaves(carry)]
        return [out] + [batch + state for state in states]

    def param_count(self, input_shape: Shape) -> int:
        """The number of parameters, as Keras' ``count_params``, for inputs
        of `input_shape` (..., D)."""
        return count_params(self, input_shape)


@dataclasses.dataclass(frozen=True)
class RNN(RecurrentLayer):
    """Keras' ``RNN(cell)``: runs a cell (or a list of cells) over time.

    Vector cells read `(B, T, D)`; ConvLSTM cells (alone or stacked) read
    frames `(B, T, *S, C)`, and the layer binds them to the frames' spatial
    size S at each call.

    Args:
      cell: a cell, or a list of cells (stacked as `StackedCells`).
      {RECURRENT_FLAGS}

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn import LSTMCell
      >>> layer = RNN([LSTMCell(3), LSTMCell(4)])
      >>> params = layer.init(jax.random.key(0), (None, 10, 5))
      >>> layer(params, jnp.ones((2, 10, 5))).shape
      (2, 4)
    """

    cell: Any

    # The flags' entries are written once, in jaxrnn/layers/_docs.py.
    __doc__ = compose_doc(__doc__)

    def __post_init__(self):
        if isinstance(self.cell, (list, tuple)):
            object.__setattr__(self, "cell", StackedCells(self.cell))
        if not (
            hasattr(self.cell, "init")
            and hasattr(self.cell, "initial_carry")
            and callable(self.cell)
        ):
            raise TypeError(
                f"`cell` must be a cell (init, initial_carry, "
                f"__call__), got {type(self.cell).__name__}."
            )
        super().__post_init__()
