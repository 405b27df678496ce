"""Keras-shaped recurrent layers: RNN, SimpleRNN, LSTM, GRU."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn._rnn import rnn
from jaxrnn._validation import check_bool
from jaxrnn.cells._base import REQUIRED, wider_float
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.layers._docs import cell_layer_doc, with_recurrent_flags
from jaxrnn.typing import Shape


def _shape_tuple(
    input_shape: Any,
    example: str = "(None, T, D)",
    fix: str = "(None, None, {})",
) -> tuple[Any, ...]:
    """`input_shape` as a tuple; a TypeError naming it for a bare number,
    which could mean features, steps or batch (`fix` shows the likely one)."""
    if isinstance(input_shape, (int, np.integer)) and not isinstance(
        input_shape, bool
    ):
        raise TypeError(
            f"`input_shape` must be a shape tuple such as {example} (None "
            f"for unknown sizes), got the int {input_shape}; for inputs of "
            f"{input_shape} features pass {fix.format(input_shape)}."
        )
    if np.ndim(input_shape) > 1 or (
        hasattr(input_shape, "dtype")
        and not np.issubdtype(input_shape.dtype, np.integer)
    ):
        raise TypeError(
            f"`input_shape` must be a shape tuple such as {example}, got an "
            f"array of shape {tuple(np.shape(input_shape))} and dtype "
            f"{input_shape.dtype}: pass the data's shape, e.g. x.shape, not "
            "the data."
        )
    if isinstance(input_shape, (str, bytes)) or not hasattr(
        input_shape, "__iter__"
    ):
        raise TypeError(
            f"`input_shape` must be a shape tuple such as "
            f"{example} (None for unknown sizes), got "
            f"{type(input_shape).__name__}."
        )
    return tuple(input_shape)


def check_layer_call(layer: Any, inputs: Any, name: str = "inputs") -> None:
    """Raises TypeError, naming `layer`'s own class, when it was called
    with its inputs alone (Python's message names the base class that
    defines ``__call__``)."""
    if inputs is REQUIRED:
        cls = type(layer).__name__
        raise TypeError(
            f"{cls} takes (params, {name}), got one argument: call it as "
            f"layer(params, {name}) with params = layer.init(key, "
            f"{name}.shape), as every jaxrnn layer keeps its weights in "
            "params you pass."
        )


def _check_input_shape(input_shape: Shape) -> tuple[Any, ...]:
    shape = _shape_tuple(input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            "`input_shape` must be (B, T, D), (T, B, D) or "
            f"unbatched (T, D) with None for unknown sizes, got "
            f"{shape}."
        )
    features = shape[-1]
    if not isinstance(features, (int, np.integer)) or features <= 0:
        raise ValueError(
            f"`input_shape` must end with a known feature size D, got {shape}."
        )
    return shape


def count_params(layer: Any, input_shape: Shape) -> int:
    """Counts the scalars in ``layer.init(key, input_shape)`` without
    allocating them (Keras' ``count_params``).

    Args:
      layer: anything with ``init(key, input_shape)``.
      input_shape: the shape `init` takes, e.g. (None, T, D).

    Returns:
      The number of parameters, non-trainable ones included.

    Example:
      >>> count_params(LSTM(8), (None, None, 4))  # 4 * (4 + 8 + 1) * 8
      416
    """
    shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), input_shape))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))


class RecurrentLayer:
    """Behaviour shared by `RNN`, `SimpleRNN`, `LSTM` and `GRU`.

    A subclass provides ``cell`` and the fields ``return_sequences``,
    ``return_state``, ``go_backwards``, ``stateful``, ``unroll``,
    ``time_major``, ``zero_output_for_mask`` and ``remat``.
    """

    def _check_flags(self) -> None:
        for name in (
            "return_sequences",
            "return_state",
            "go_backwards",
            "stateful",
            "time_major",
            "zero_output_for_mask",
            "remat",
        ):
            check_bool(name, getattr(self, name))

    def init(self, key: jax.Array, input_shape: Shape) -> Any:
        """Creates the cell's params for inputs of `input_shape`.

        Args:
          key: PRNG key.
          input_shape: (B, T, D) (time-major (T, B, D)) or (T, D); None for
            unknown batch or time sizes.

        Returns:
          The cell's params (a dict with Keras' names, or a list for stacked
          cells).
        """
        return self.cell.init(key, _check_input_shape(input_shape)[-1])

    def _carry_from_state(
        self, initial_state: Any, batch_shape, inputs_shape=None
    ) -> Any:
        if initial_state is None:
            return None
        states = jax.tree.leaves(initial_state)
        carry = jax.eval_shape(lambda: self.cell.initial_carry(batch_shape))
        treedef = jax.tree.structure(carry)
        if len(states) != treedef.num_leaves:
            raise ValueError(
                f"`initial_state` must hold {treedef.num_leaves} "
                f"state array(s) for {type(self.cell).__name__}, "
                f"got {len(states)}."
            )
        if inputs_shape is not None:
            self._check_state_shapes(
                states, jax.tree.leaves(carry), inputs_shape
            )
        return jax.tree.unflatten(treedef, states)

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
        cells = getattr(self.cell, "cells", None)
        first = cells[0] if cells else self.cell
        target = getattr(first, "dtype", None)
        if target is None:
            first_params = (
                params[0]
                if cells and isinstance(params, (list, tuple))
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

    def _check_inputs_rank(self, shape: tuple, feature_axes: int) -> None:
        """Refuses inputs of no known layout, and unbatched inputs to a
        stateful layer: Keras' stateful layers read batches, and a (B, D)
        array there is most likely one step of B streams missing its time
        axis, which would silently run as one sequence of B steps."""
        rank, unbatched = len(shape), 1 + feature_axes
        features = "D" if feature_axes == 1 else "*S, C"
        batched = (
            f"(T, B, {features})" if self.time_major else f"(B, T, {features})"
        )
        if rank not in (unbatched, unbatched + 1):
            raise ValueError(
                f"`inputs` must have shape {batched} or unbatched "
                f"(T, {features}), got {tuple(shape)} (rank "
                f"{rank})."
            )
        if self.stateful and rank == unbatched:
            fix = "x[None]" if self.time_major else "x[:, None]"
            raise ValueError(
                f"A stateful {type(self).__name__} reads batches {batched}, "
                f"as Keras' stateful layers do; got {tuple(shape)}, which "
                f"would run as one unbatched sequence (T, {features}). For one "
                f"step of a batch of streams add a time axis, e.g. {fix}; for "
                "one unbatched sequence (under jax.vmap, say) use "
                "return_state=True, which returns the same states."
            )

    def _check_state_shapes(self, states, wanted, inputs_shape) -> None:
        for i, (state, want) in enumerate(zip(states, wanted)):
            got = tuple(np.shape(state))
            if got == want.shape:
                continue
            if len(inputs_shape) == 2 and len(got) == len(want.shape) + 1:
                # Rank-2 inputs are one unbatched sequence (T, D); batched
                # states say the caller meant a batch of single steps.
                fix = "x[None]" if self.time_major else "x[:, None]"
                layout = "(T, B, D)" if self.time_major else "(B, T, D)"
                raise ValueError(
                    f"`initial_state[{i}]` is batched, {got}, but `inputs` "
                    f"{tuple(inputs_shape)} has no time axis and reads as one "
                    f"unbatched sequence (T, D): batched inputs must be "
                    f"{layout}; add a time axis, e.g. {fix}."
                )
            raise ValueError(
                f"`initial_state[{i}]` must have shape "
                f"{want.shape} for inputs "
                f"{tuple(inputs_shape)}, got {got}."
            )

    def __call__(
        self,
        params: Any,
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
          inputs: (B, T, D), (T, B, D) with ``time_major``, or (T, D);
            floating, or integers, cast to the compute dtype as in Keras.
          mask: bool (B, T) (time-major (T, B)), True for valid steps.
          initial_state: a state array or a list of them in Keras' order
            (LSTM: [h, c]); zeros when None.
          key: PRNG key for dropout (training only).
          training: turn dropout on.

        Returns:
          The output, (B, T, H) with ``return_sequences`` else (B, H); or
          ``[output, *states]`` with ``return_state`` or ``stateful`` (the
          states in Keras' order, ready to be passed back as
          ``initial_state``).
        """
        check_layer_call(self, inputs)
        self._check_inputs_rank(np.shape(inputs), 1)
        inputs = self._float_inputs(params, inputs)
        batch_shape = (
            ()
            if np.ndim(inputs) == 2
            else (np.shape(inputs)[1 if self.time_major else 0],)
        )
        outputs, carry = rnn(
            self.cell,
            params,
            inputs,
            initial_carry=self._carry_from_state(
                initial_state, batch_shape, np.shape(inputs)
            ),
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
            return [outputs, *jax.tree.leaves(carry)]
        return outputs

    def compute_mask(self, inputs: jax.Array, mask: jax.Array | None) -> Any:
        """The mask for the next layer: `mask` (B, T) when returning
        sequences, else None."""
        return mask if self.return_sequences else None

    def output_shape(self, input_shape: Shape) -> Any:
        """Keras' ``compute_output_shape``.

        Args:
          input_shape: (B, T, D), (T, B, D) with ``time_major``, or (T, D);
            None for unknown sizes.

        Returns:
          The output shape, e.g. (B, T, H) or (B, H); with ``return_state``
          or ``stateful`` a list of it and each state's shape (B, H).

        Example:
          >>> LSTM(8, return_state=True).output_shape((None, 20, 4))
          [(None, 8), (None, 8), (None, 8)]
        """
        shape = _check_input_shape(input_shape)
        if len(shape) == 2:
            batch, steps = (), (shape[0],)
        elif self.time_major:
            batch, steps = (shape[1],), (shape[0],)
        else:
            batch, steps = (shape[0],), (shape[1],)
        output_size = getattr(self.cell, "output_size", None)
        if not isinstance(output_size, (int, np.integer)):
            raise TypeError(
                f"{type(self).__name__}.output_shape needs the "
                f"cell's `output_size` (the int feature size of "
                f"its output); {type(self.cell).__name__} has "
                f"{output_size!r}."
            )
        size = (int(output_size),)
        if not self.return_sequences:
            out = batch + size
        elif self.time_major:
            out = steps + batch + size
        else:
            out = batch + steps + size
        if not (self.return_state or self.stateful):
            return out
        carry = jax.eval_shape(lambda: self.cell.initial_carry(()))
        return [out] + [batch + leaf.shape for leaf in jax.tree.leaves(carry)]

    def param_count(self, input_shape: Shape) -> int:
        """The number of parameters, as Keras' ``count_params``, for inputs
        of `input_shape` (..., D)."""
        return count_params(self, input_shape)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _LayerOptions:
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False
    time_major: bool = False
    zero_output_for_mask: bool = False
    remat: bool = False


@dataclasses.dataclass(frozen=True)
class RNN(_LayerOptions, RecurrentLayer):
    """Keras' ``RNN(cell)``: runs a cell (or a list of cells) over time.

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
    __doc__ = with_recurrent_flags(__doc__)

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
        self._check_flags()


class _CellLayer(RecurrentLayer):
    """A layer whose cell is built from its own fields (Keras' LSTM etc.)."""

    cell_type: ClassVar[type]

    @functools.cached_property
    def cell(self):
        names = [f.name for f in dataclasses.fields(self.cell_type)]
        return self.cell_type(**{n: getattr(self, n) for n in names})

    def __post_init__(self):
        self._check_flags()
        _ = self.cell  # builds and validates the cell now, not mid-trace


def _cell_layer(name: str, cell_type: type, doc: str) -> type:
    """A frozen dataclass with `cell_type`'s fields and `RNN`'s flags, so a
    layer takes exactly its cell's arguments (Keras' ``LSTM(units, ...)``)."""
    fields = []
    for f in dataclasses.fields(cell_type):
        default = (
            {} if f.default is dataclasses.MISSING else {"default": f.default}
        )
        fields.append(
            (f.name, f.type, dataclasses.field(kw_only=f.kw_only, **default))
        )
    return dataclasses.make_dataclass(
        name,
        fields,
        bases=(_LayerOptions, _CellLayer),
        frozen=True,
        namespace={
            "cell_type": cell_type,
            "__doc__": doc,
            "__module__": __name__,
        },
    )


SimpleRNN = _cell_layer(
    "SimpleRNN",
    SimpleRNNCell,
    cell_layer_doc(
        """Keras' ``SimpleRNN``: a `SimpleRNNCell` under `RNN`.

    Takes `SimpleRNNCell`'s arguments, with its defaults, and `RNN`'s flags.
    """,
        SimpleRNNCell,
        """
    Inputs `(B, T, D)` (`(T, B, D)` with ``time_major``, or unbatched
    `(T, D)`); outputs `(B, T, H)` with ``return_sequences``, else
    `(B, H)`; ``[output, h]`` with ``return_state``. Params:
    ``{'kernel': (D, H), 'recurrent_kernel': (H, H), 'bias': (H,)}``.
    """,
        """
    >>> import jax, jax.numpy as jnp
    >>> layer = SimpleRNN(4, return_sequences=True)
    >>> params = layer.init(jax.random.key(0), (None, 5, 3))
    >>> layer(params, jnp.ones((2, 5, 3))).shape
    (2, 5, 4)
    """,
    ),
)

LSTM = _cell_layer(
    "LSTM",
    LSTMCell,
    cell_layer_doc(
        """Keras' ``LSTM``: an `LSTMCell` under `RNN`.

    Takes `LSTMCell`'s arguments, with its defaults, and `RNN`'s flags.
    """,
        LSTMCell,
        """
    Inputs `(B, T, D)` (`(T, B, D)` with ``time_major``, or unbatched
    `(T, D)`); outputs `(B, T, H)` with ``return_sequences``, else
    `(B, H)`; ``[output, h, c]`` with ``return_state``. Params:
    ``{'kernel': (D, 4H), 'recurrent_kernel': (H, 4H), 'bias': (4H,)}``,
    gates in Keras' order i, f, c, o.
    """,
        """
    >>> import jax, jax.numpy as jnp
    >>> layer = LSTM(4, return_state=True)
    >>> params = layer.init(jax.random.key(0), (None, 5, 3))
    >>> out, h, c = layer(params, jnp.ones((2, 5, 3)))
    >>> out.shape, c.shape
    ((2, 4), (2, 4))
    """,
    ),
)

GRU = _cell_layer(
    "GRU",
    GRUCell,
    cell_layer_doc(
        """Keras' ``GRU``: a `GRUCell` under `RNN` (``reset_after=True`` by default).

    Takes `GRUCell`'s arguments, with its defaults, and `RNN`'s flags.
    """,
        GRUCell,
        """
    Inputs `(B, T, D)` (`(T, B, D)` with ``time_major``, or unbatched
    `(T, D)`); outputs `(B, T, H)` with ``return_sequences``, else
    `(B, H)`; ``[output, h]`` with ``return_state``. Params:
    ``{'kernel': (D, 3H), 'recurrent_kernel': (H, 3H), 'bias': (2, 3H)}``
    (bias `(3H,)` without ``reset_after``), gates in Keras' order z, r, h.
    """,
        """
    >>> import jax, jax.numpy as jnp
    >>> layer = GRU(4, return_sequences=True)
    >>> params = layer.init(jax.random.key(0), (None, 5, 3))
    >>> layer(params, jnp.ones((2, 5, 3))).shape
    (2, 5, 4)
    """,
    ),
)
