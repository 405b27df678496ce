"""Keras' ``Sequential``: layers applied one after another.

`Sequential` is the model container: it builds each layer's params, runs
the layers in order, threading params, mask and states, and checks what
it is given at its boundary. The rules it applies have modules of their
own: the shape walk and batch-rank rule (`_sequential_shapes`), the params
check (`_sequential_params`), the states of a stateful stream
(`_sequential_states`), the mask found from shapes (`_sequential_masks`)
and the summary table (`_sequential_summary`, whose `summary` and
`keras_snake_case` are importable from here too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrnn.cells._base import REQUIRED
from jaxrnn.layers._common import check_layer_call, count_params, shape_tuple
from jaxrnn.layers._sequential_masks import mask_from_shapes
from jaxrnn.layers._sequential_params import (
    check_model_params,
    trainable_entries,
)
from jaxrnn.layers._sequential_run import run_layers
from jaxrnn.layers._sequential_shapes import walk_shapes
from jaxrnn.layers._sequential_states import (
    check_states,
    is_stateful,
    no_state_message,
    state_structs,
)
from jaxrnn.layers._sequential_summary import (
    keras_layer_names,
    keras_snake_case,
    summary,
)
from jaxrnn.typing import Shape

__all__ = ["Sequential", "keras_snake_case", "summary"]


@dataclasses.dataclass(frozen=True, init=False)
class Sequential:
    """Layers applied one after another, Keras' ``Sequential``.

    The mask produced by ``Embedding(mask_zero=True)`` (or passed in) flows
    to the next layers as in Keras: most layers pass it on, a recurrent layer
    passes it on only when it returns sequences.

    Args:
      layers: the layers, each with ``init(key, input_shape)``,
        ``layer(params, x, *, mask, key, training)`` and ``output_shape``;
        recurrent layers may be ``stateful=True`` but not
        ``return_state=True`` (a Sequential layer has one output).
      name: the model's name in `summary`.

    The model's input decides whether it is batched: a recurrent layer
    first reached with (B, T, D) makes every later recurrent layer need
    (B, T, H) too, so a recurrent layer without ``return_sequences=True``
    followed by another is refused (Keras: "expected ndim=3") rather than
    its (B, H) output read as one unbatched sequence. With (T, D) the model
    runs one unbatched example, as under `jax.vmap`.

    Params are a list with one entry per layer (each the layer's own).
    ``model(params, x)`` returns the output; ``model.apply(params, x,
    training=True)`` returns ``(output, new_params)`` where new_params holds
    the moved batch-norm statistics, for the caller to keep.

    A model with a ``stateful=True`` layer (Keras' char-RNN pattern) keeps
    no state either: ``model(params, x, states=states)`` returns ``(output,
    new_states)``, ``states`` a list with one entry per layer (None for a
    stateless layer, the layer's ``[h, c]``-style list for a stateful one),
    which the caller passes back with the next chunk. ``states=None`` (or a
    None entry) starts from zeros, as a Keras stateful model does after
    ``reset_state()``; `initial_states` gives the zeros explicitly.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn.layers import Dense, Embedding, LSTM
      >>> model = Sequential([Embedding(100, 8, mask_zero=True), LSTM(16), Dense(2)])
      >>> params = model.init(jax.random.key(0), (None, None))
      >>> model(params, jnp.array([[5, 7, 0, 0]])).shape
      (1, 2)
      >>> stream = Sequential([
      ...     LSTM(4, return_sequences=True, stateful=True), Dense(1)])
      >>> params = stream.init(jax.random.key(0), (2, None, 3))
      >>> y, states = stream(params, jnp.ones((2, 5, 3)))
      >>> y, states = stream(params, jnp.ones((2, 5, 3)), states=states)
      >>> y.shape, [None if s is None else len(s) for s in states]
      ((2, 5, 1), [2, None])
    """

    layers: tuple[Any, ...]
    name: str = "sequential"

    def __init__(self, layers: Sequence[Any], name: str = "sequential"):
        if isinstance(layers, (str, bytes)) or not isinstance(
            layers, Sequence
        ):
            raise TypeError(
                "`layers` must be a list of layers, got "
                f"{type(layers).__name__}."
            )
        for i, layer in enumerate(layers):
            if not all(
                hasattr(layer, m) for m in ("init", "output_shape")
            ) or not callable(layer):
                raise TypeError(
                    f"layers[{i}] ({type(layer).__name__}) is not a "
                    "layer: it needs init, output_shape and __call__."
                )
            if getattr(layer, "return_state", False):
                raise ValueError(
                    f"layers[{i}] ({type(layer).__name__}) has "
                    "return_state=True, which returns its states; a "
                    "Sequential layer must return a single output (for "
                    "states threaded between calls use stateful=True)."
                )
        object.__setattr__(self, "layers", tuple(layers))
        object.__setattr__(self, "name", name)

    def layer_names(self) -> list[str]:
        """Keras' default names, one per layer: ``lstm``, ``lstm_1``, ...

        Example:
          >>> from jaxrnn.layers import Dense, LSTM
          >>> model = Sequential([LSTM(4, return_sequences=True), LSTM(4),
          ...                     Dense(1)])
          >>> model.layer_names()
          ['lstm', 'lstm_1', 'dense']
        """
        return keras_layer_names(self.layers)

    def output_shapes(self, input_shape: Shape) -> list[Any]:
        """Each layer's output shape for `input_shape` (None: unknown); a
        recurrent layer returning states counts with its output only."""
        return walk_shapes(self.layers, input_shape, "input_shape")[1:]

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """The model's output shape."""
        return (
            self.output_shapes(input_shape)[-1]
            if self.layers
            else tuple(input_shape)
        )

    def init(self, key: jax.Array, input_shape: Shape) -> list[Any]:
        """Returns a list with each layer's params, in order."""
        shapes = walk_shapes(self.layers, input_shape, "input_shape")
        keys = jax.random.split(key, max(len(self.layers), 1))
        return [
            layer.init(k, shape)
            for layer, k, shape in zip(self.layers, keys, shapes)
        ]

    @property
    def stateful(self) -> bool:
        """Whether a layer is ``stateful=True``: then the model takes
        ``states=`` and returns ``(output, new_states)``."""
        return any(is_stateful(layer) for layer in self.layers)

    def initial_states(self, input_shape: Shape) -> list[Any]:
        """Zero states for inputs of `input_shape`, as `__call__` takes them.

        Args:
          input_shape: the model's input shape with a known batch size B
            (Keras' ``keras.Input(batch_shape=...)``), e.g. x.shape; the
            time size may be None.

        Returns:
          A list with one entry per layer: None for a stateless layer, a
          list of zero arrays in Keras' state order for a stateful one
          (LSTM ``[h, c]``, each (B, H); Bidirectional forward then
          backward), a nested list for a nested `Sequential`.

        Raises:
          ValueError: the model has no stateful layer, or the batch size is
            unknown.

        Example:
          >>> from jaxrnn.layers import Dense, LSTM
          >>> model = Sequential([
          ...     LSTM(8, return_sequences=True, stateful=True), Dense(2)])
          >>> states = model.initial_states((4, None, 3))
          >>> [h.shape for h in states[0]], states[1]
          ([(4, 8), (4, 8)], None)
        """
        if not self.stateful:
            raise ValueError(no_state_message(self, "initial_states"))
        structs = state_structs(self, shape_tuple(input_shape))
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), structs)

    def apply(
        self,
        params: Sequence[Any],
        x: ArrayLike,
        *,
        mask: ArrayLike | None = None,
        states: Sequence[Any] | None = None,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> tuple[Any, list[Any]]:
        """Runs the layers; returns ``(output, new_params)``, or
        ``((output, new_states), new_params)`` for a `stateful` model.

        Args:
          params: the list from `init`.
          x: the first layer's input (token ids for an `Embedding`).
          mask: an optional bool mask for the first layer, (B, T).
          states: only for a `stateful` model: the list from the last call
            or `initial_states`, one entry per layer (None: zeros).
          key: PRNG key for dropout, split between the layers.
          training: dropout on, batch statistics in batch norm.

        Returns:
          ``(result, new_params)``: result is what `__call__` returns (the
          output; ``(output, new_states)`` for a stateful model), new_params
          the params with batch-norm moving statistics updated (in training;
          unchanged otherwise).
        """
        self._check_call(params, x, states)
        y, new_params, _, new_states = self._run(
            params, x, mask, states, key, training
        )
        return ((y, new_states) if self.stateful else y), new_params

    def _check_call(self, params: Any, x: Any, states: Any) -> None:
        if not isinstance(params, (list, tuple)) or len(params) != len(
            self.layers
        ):
            raise ValueError(
                f"Sequential params must be a list of "
                f"{len(self.layers)} entries (one per layer), got "
                f"{type(params).__name__} of length "
                f"{len(params) if hasattr(params, '__len__') else '?'}."
            )
        shapes = walk_shapes(self.layers, np.shape(x), "inputs")
        check_model_params(self, params, np.shape(x))
        if states is not None:
            check_states(self, states, shapes)

    def _run(
        self,
        params: Sequence[Any],
        x: Any,
        mask: Any,
        states: Any,
        key: Any,
        training: bool,
    ) -> tuple:
        """(output, new_params, output mask, new_states), unchecked."""
        return run_layers(self.layers, params, x, mask, states, key, training)

    def compute_mask(
        self,
        inputs: ArrayLike,
        mask: ArrayLike | None = None,
        *,
        params: Sequence[Any] | None = None,
        states: Sequence[Any] | None = None,
    ) -> jax.Array | None:
        """The mask the model's output carries, as Keras' ``Sequential``
        gives its output (``keras.src.backend.get_keras_mask(model(x))``,
        tf.keras' ``compute_mask``).

        Args:
          inputs: the model's inputs (token ids for an `Embedding`).
          mask: an optional bool mask for the first layer, (B, T).
          params: only needed when a layer after the first computes its
            mask from its inputs' values (`Masking` after a `Dense`): then
            the layers run, in inference, to give it those values.
          states: with `params`, a stateful model's states (None: zeros).

        Returns:
          The last layer's output mask, (B, T), or None (e.g. after a
          recurrent layer returning only its last output).

        Raises:
          ValueError: without `params`, a layer after the first computes
            its mask from values that only params can give.

        Example:
          >>> import jax.numpy as jnp
          >>> from jaxrnn.layers import Embedding, LSTM
          >>> model = Sequential([Embedding(10, 3, mask_zero=True),
          ...                     LSTM(4, return_sequences=True)])
          >>> model.compute_mask(jnp.array([[4, 2, 0]])).tolist()
          [[True, True, False]]
        """
        if mask is not None and jnp.asarray(mask).dtype != jnp.bool_:
            raise TypeError(
                f"`mask` must be boolean, got {jnp.asarray(mask).dtype}."
            )
        if params is not None:
            self._check_call(params, inputs, states)
            return self._run(params, inputs, mask, states, None, False)[2]
        if states is not None:
            raise ValueError(
                "`states` reach the mask only through the "
                "layers' outputs: pass `params` with them."
            )
        shapes = walk_shapes(self.layers, np.shape(inputs), "inputs")
        return mask_from_shapes(
            self.layers,
            inputs,
            None if mask is None else jnp.asarray(mask),
            shapes,
        )

    def __call__(
        self,
        params: Sequence[Any],
        x: ArrayLike = REQUIRED,
        *,
        mask: ArrayLike | None = None,
        states: Sequence[Any] | None = None,
        key: jax.Array | None = None,
        training: bool = False,
    ) -> Any:
        """Runs the layers; returns the output (see `apply` for updates).

        Args:
          params: the list from `init`.
          x: the first layer's input (token ids for an `Embedding`).
          mask: an optional bool mask for the first layer, (B, T).
          states: only for a `stateful` model: where its stateful layers
            start, the last call's new_states or `initial_states`; zeros
            when None (or for a None entry).
          key: PRNG key for dropout, split between the layers.
          training: dropout on, batch statistics in batch norm.

        Returns:
          The last layer's output; ``(output, new_states)`` for a `stateful`
          model, new_states a list like `states` to pass back with the next
          chunk.

        Raises:
          ValueError: `states` for a model without stateful layers, or
            states that do not fit the layers and the batch size.
        """
        check_layer_call(self, x, "x")
        return self.apply(
            params, x, mask=mask, states=states, key=key, training=training
        )[0]

    def param_count(self, input_shape: Shape) -> int:
        """The number of parameters, trainable or not."""
        return count_params(self, input_shape)

    def count_params(self, input_shape: Shape) -> int:
        """Keras' ``model.count_params()``; the input shape is needed as
        nothing is built before `init`.

        Example:
          >>> from jaxrnn.layers import Dense, LSTM
          >>> Sequential([LSTM(8), Dense(1)]).count_params((None, None, 4))
          425
        """
        return count_params(self, input_shape)

    def summary(
        self,
        input_shape: Shape,
        print_fn: Callable[[str], None] | None = print,
    ) -> str:
        """Keras' ``model.summary()``: prints (and returns) the table that
        the free function `summary` gives, for inputs of `input_shape`.

        Args:
          input_shape: the model's input shape, None for unknown sizes.
          print_fn: where to print each line; None prints nothing.
        """
        return summary(self, input_shape, print_fn)

    def trainable_mask(self, params: Sequence[Any]) -> list[Any]:
        """A pytree like `params`: True for trainable arrays, False for
        batch-norm statistics (for ``optax.masked``)."""
        return [
            trainable_entries(layer, p)
            for layer, p in zip(self.layers, params)
        ]
