"""Sequential models and Keras-style summaries."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells._base import REQUIRED
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.convolutional import Conv1D
from jaxrnn.layers.core import TimeDistributed
from jaxrnn.layers.pooling import (
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from jaxrnn.layers.recurrent import (
    RecurrentLayer,
    _shape_tuple,
    check_layer_call,
    count_params,
)
from jaxrnn.typing import Shape


def keras_snake_case(name: str) -> str:
    """Keras' ``to_snake_case``, which names layers (and their paths in
    weight files) after their class.

    Example:
      >>> keras_snake_case("SimpleRNN"), keras_snake_case("LSTMCell")
      ('simple_rnn', 'lstm_cell')
    """
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _first(shape: Any) -> Any:
    # Recurrent layers with return_state report [output, *states].
    return shape[0] if isinstance(shape, list) else shape


def _is_stateful(layer: Any) -> bool:
    return bool(getattr(layer, "stateful", False))


def _outputs_count(layer: Any) -> int:
    # Bidirectional without a merge returns [y, y_rev] before its states.
    return (
        2
        if isinstance(layer, Bidirectional) and layer.merge_mode is None
        else 1
    )


def _layer_state_structs(layer: Any, i: int, shape: tuple) -> list:
    """Shapes and dtypes of a stateful layer's states for inputs `shape`."""
    n = _outputs_count(layer)
    wanted = layer.output_shape(shape)[n:]
    if any(d is None for state in wanted for d in state):
        raise ValueError(
            f"layers[{i}] ({type(layer).__name__}) is stateful, and its "
            f"states {[tuple(w) for w in wanted]} need known sizes, got "
            f"inputs {tuple(shape)}: pass a shape with a fixed batch size "
            "(Keras' keras.Input(batch_shape=(B, ...))), e.g. x.shape."
        )
    # The time size does not reach the states; the batch size was checked.
    concrete = tuple(1 if d is None else d for d in shape)
    result = jax.eval_shape(
        lambda: layer(
            layer.init(jax.random.key(0), shape),
            jnp.zeros(concrete, jnp.float32),
        )
    )
    return list(result[n:])


def _state_structs(model: Sequential, shape: tuple) -> list:
    """Per layer: None, or the states' ShapeDtypeStructs (a nested
    Sequential: its own list)."""
    shapes = model._walk(shape, "input_shape")
    structs = []
    for i, (layer, layer_shape) in enumerate(zip(model.layers, shapes)):
        if not _is_stateful(layer):
            structs.append(None)
        elif isinstance(layer, Sequential):
            structs.append(_state_structs(layer, layer_shape))
        else:
            structs.append(_layer_state_structs(layer, i, layer_shape))
    return structs


_cached_state_structs = functools.lru_cache(maxsize=64)(_state_structs)


def _run_layer(
    layer: Any,
    params: Any,
    x: Any,
    mask: Any,
    state: Any,
    key: Any,
    training: bool,
) -> tuple:
    """One layer's step: (output, new_params, mask for the next layer,
    new_state or None)."""
    if isinstance(layer, Sequential):
        # Its own output mask and states, not the mask it was given.
        y, params, mask, state = layer._run(
            params, x, mask, state, key, training
        )
        return y, params, mask, state if layer.stateful else None
    stateful = _is_stateful(layer)
    kwargs = {"mask": mask, "key": key, "training": training}
    if stateful:
        kwargs["initial_state"] = state
    if hasattr(layer, "apply"):
        y, params = layer.apply(params, x, **kwargs)
    else:
        y = layer(params, x, **kwargs)
    if stateful:
        # A stateful layer returns [output, *states] (Keras' state order).
        n = _outputs_count(layer)
        y, state = (y[0] if n == 1 else list(y[:n])), list(y[n:])
    if hasattr(layer, "compute_mask"):
        mask = layer.compute_mask(x, mask)
    return y, params, mask, state


def _unbatched_rank(layer: Any) -> int | None:
    """The rank of one unbatched example a sequence layer reads: 2 for
    (T, D), 2 + spatial axes for ConvLSTM; None for a layer that takes any
    rank (Dense, Embedding, ...)."""
    if isinstance(layer, Sequential):
        return _unbatched_rank(layer.layers[0]) if layer.layers else None
    inner = layer.layer if isinstance(layer, Bidirectional) else layer
    if isinstance(inner, RecurrentLayer):
        return 1 + getattr(inner.cell, "input_ndim", 1)
    if isinstance(
        inner,
        (Conv1D, MaxPooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D),
    ):
        return 2  # (T, C): Keras' "expected ndim=3" with the batch
    return None


def _leaf_paths(tree: Any) -> tuple[str, ...]:
    # Paths, not treedefs: a list where init gives a tuple is no error.
    return tuple(
        sorted(
            jax.tree_util.keystr(path)
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]
        )
    )


def _describe(params: Any) -> str:
    if isinstance(params, dict):
        return f"keys {sorted(map(str, params))}"
    if isinstance(params, (list, tuple)):
        return f"a {type(params).__name__} of {len(params)}"
    return type(params).__name__


def _leaf_shapes(tree: Any) -> tuple:
    return tuple(
        sorted(
            (jax.tree_util.keystr(path), tuple(np.shape(leaf)))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        )
    )


def _init_params_paths(model: Sequential, shape: tuple) -> tuple:
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), shape))
    return (
        tuple(map(_leaf_paths, shapes)),
        tuple(map(_describe, shapes)),
        tuple(map(_leaf_shapes, shapes)),
    )


_cached_params_paths = functools.lru_cache(maxsize=64)(_init_params_paths)


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
        seen: dict[str, int] = {}
        names = []
        for layer in self.layers:
            stem = keras_snake_case(type(layer).__name__)
            count = seen.get(stem, 0)
            names.append(stem if count == 0 else f"{stem}_{count}")
            seen[stem] = count + 1
        return names

    def output_shapes(self, input_shape: Shape) -> list[Any]:
        """Each layer's output shape for `input_shape` (None: unknown); a
        recurrent layer returning states counts with its output only."""
        return self._walk(input_shape, "input_shape")[1:]

    def _walk(self, input_shape: Shape, name: str) -> list[Any]:
        """The model's input shape then each layer's output shape; raises
        where a sequence layer gets the wrong rank for the model."""
        shape = _shape_tuple(input_shape)
        shapes, batched = [shape], None
        for i, layer in enumerate(self.layers):
            batched = self._check_rank(i, shape, batched, shapes[0], name)
            shape = _first(layer.output_shape(shape))
            shapes.append(shape)
        return shapes

    def _check_rank(
        self,
        i: int,
        shape: tuple,
        batched: bool | None,
        model_shape: tuple,
        name: str,
    ) -> bool | None:
        """Whether the model is batched, as the first recurrent layer's
        input says; later ones must agree."""
        layer, rank = self.layers[i], _unbatched_rank(self.layers[i])
        if rank is None:
            if (
                batched
                and isinstance(layer, TimeDistributed)
                and len(shape) < 3
            ):
                self._rank_error(
                    i,
                    shape,
                    "rank 3 or more, (B, T, ...),",
                    batched,
                    model_shape,
                    name,
                )
            return batched
        if batched is None:
            # Wrong ranks here are the layer's own error to raise.
            return (
                len(shape) == rank + 1 if len(shape) - rank in (0, 1) else None
            )
        if len(shape) != rank + batched:
            layout = ("(B, T, " if batched else "(T, ") + (
                "D)" if rank == 2 else f"*S, C) with {rank - 2} spatial axes"
            )
            self._rank_error(
                i,
                shape,
                f"rank {rank + batched}, {layout},",
                batched,
                model_shape,
                name,
            )
        return batched

    def _rank_error(
        self,
        i: int,
        shape: tuple,
        want: str,
        batched: bool,
        model_shape: tuple,
        name: str,
    ) -> None:
        message = (
            f"layers[{i}] ({type(self.layers[i]).__name__}) needs "
            f"inputs of {want} as the model's `{name}` "
            f"{tuple(model_shape)} is "
            f"{'batched' if batched else 'unbatched'}, got "
            f"{tuple(shape)}"
        )
        previous = [j for j in range(i) if _unbatched_rank(self.layers[j])]
        if previous and not getattr(
            self.layers[previous[-1]], "return_sequences", True
        ):
            j = previous[-1]
            message += (
                f" from layers[{j}] "
                f"({type(self.layers[j]).__name__}), which returns "
                f"only its last output: set return_sequences=True "
                f"on layers[{j}]."
            )
        else:
            message += "."
        raise ValueError(message)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """The model's output shape."""
        return (
            self.output_shapes(input_shape)[-1]
            if self.layers
            else tuple(input_shape)
        )

    def init(self, key: jax.Array, input_shape: Shape) -> list[Any]:
        """Returns a list with each layer's params, in order."""
        shapes = self._walk(input_shape, "input_shape")
        keys = jax.random.split(key, max(len(self.layers), 1))
        return [
            layer.init(k, shape)
            for layer, k, shape in zip(self.layers, keys, shapes)
        ]

    @property
    def stateful(self) -> bool:
        """Whether a layer is ``stateful=True``: then the model takes
        ``states=`` and returns ``(output, new_states)``."""
        return any(_is_stateful(layer) for layer in self.layers)

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
            raise ValueError(self._no_state_message("initial_states"))
        structs = self._state_structs(_shape_tuple(input_shape))
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), structs)

    def _state_structs(self, shape: tuple) -> list:
        try:
            return _cached_state_structs(self, tuple(shape))
        except TypeError:  # an unhashable custom layer or shape: no cache
            return _state_structs(self, tuple(shape))

    def _no_state_message(self, what: str) -> str:
        return (
            f"`{what}` is for a model with stateful layers, and no layer "
            f"of this Sequential has stateful=True (layers: "
            f"{[type(layer).__name__ for layer in self.layers]})."
        )

    def apply(
        self,
        params: Sequence[Any],
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
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
        shapes = self._walk(np.shape(x), "inputs")
        self._check_params(params, np.shape(x))
        if states is not None:
            self._check_states(states, shapes)

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
        count = len(self.layers)
        keys = (
            [None] * count
            if key is None
            else list(jax.random.split(key, count))
        )
        states = [None] * count if states is None else states
        new_params, new_states = [], []
        for layer, p, state, k in zip(self.layers, params, states, keys):
            x, p, mask, state = _run_layer(
                layer, p, x, mask, state, k, training
            )
            new_params.append(p)
            new_states.append(state)
        return x, new_params, mask, new_states

    def _check_states(self, states: Any, shapes: list) -> None:
        """`states` against `initial_states` for inputs `shapes[0]`, so a
        wrong batch size or a stateless layer's entry fails here, by index."""
        if not self.stateful:
            raise ValueError(self._no_state_message("states"))
        if not isinstance(states, (list, tuple)) or len(states) != len(
            self.layers
        ):
            raise ValueError(
                f"`states` must be a list of {len(self.layers)} entries (one "
                "per layer, None for a stateless layer), as `initial_states` "
                f"returns, got {_describe(states)}."
            )
        expected = self._state_structs(shapes[0])
        for i, (layer, want, have) in enumerate(
            zip(self.layers, expected, states)
        ):
            name = f"layers[{i}] ({type(layer).__name__})"
            if have is None:
                continue
            if want is None:
                raise ValueError(
                    f"`states[{i}]` must be None as {name} is "
                    f"not stateful, got {_describe(have)}."
                )
            if isinstance(layer, Sequential):
                layer._check_states(have, layer._walk(shapes[i], "inputs"))
                continue
            want_shapes = [s.shape for s in want]
            got = [tuple(np.shape(a)) for a in jax.tree.leaves(have)]
            if got != want_shapes:
                raise ValueError(
                    f"`states[{i}]` for {name} must hold {len(want_shapes)} "
                    f"array(s) of shapes {want_shapes} for inputs "
                    f"{tuple(shapes[0])}, got {got}."
                )

    def compute_mask(
        self,
        inputs: jax.Array,
        mask: jax.Array | None = None,
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
        shapes = self._walk(np.shape(inputs), "inputs")
        for i, layer in enumerate(self.layers):
            if not hasattr(layer, "compute_mask"):
                continue
            # Later layers' inputs come from params: shapes known, values not.
            x = (
                inputs
                if i == 0
                else jax.ShapeDtypeStruct(shapes[i], jnp.float32)
            )
            try:
                mask = layer.compute_mask(x, mask)
            except TypeError as error:
                if i == 0:
                    raise
                raise ValueError(
                    f"layers[{i}] ({type(layer).__name__}) computes its mask "
                    "from its inputs' values, which come from the layers "
                    "before it: pass `params` to compute_mask."
                ) from error
        return mask

    def _check_params(self, params: Sequence[Any], shape: tuple) -> None:
        """Each entry's structure against its layer's `init`, so params in
        the wrong order fail here, by index, not as a KeyError inside."""
        try:
            hash(self)
        except TypeError:  # an unhashable custom layer: no cache
            expected, described, shapes = _init_params_paths(
                self, tuple(shape)
            )
        else:
            expected, described, shapes = _cached_params_paths(
                self, tuple(shape)
            )
        got = [_leaf_paths(p) for p in params]
        for i, (want, have) in enumerate(zip(expected, got)):
            if want == have:
                # Same keys: a swap shows in the shapes (LSTM and GRU
                # params); other shape errors are the layer's to explain.
                have_shapes = _leaf_shapes(params[i])
                swapped = [
                    j
                    for j, s in enumerate(shapes)
                    if s == have_shapes and s != shapes[i]
                ]
                if swapped:
                    j = swapped[0]
                    raise ValueError(
                        f"Sequential params[{i}] does not fit layers[{i}] "
                        f"({type(self.layers[i]).__name__}): its arrays have "
                        f"the shapes of layers[{j}] "
                        f"({type(self.layers[j]).__name__})'s params: params "
                        "may be in the wrong order; keep `init`'s order, one "
                        "entry per layer."
                    )
                continue
            message = (
                f"Sequential params[{i}] does not fit layers[{i}] "
                f"({type(self.layers[i]).__name__}): it expects "
                f"{described[i]}, got {_describe(params[i])}"
            )
            fits = [j for j, paths in enumerate(expected) if paths == have]
            if fits:
                message += (
                    f", the params of layers[{fits[0]}] "
                    f"({type(self.layers[fits[0]]).__name__}): params "
                    f"may be in the wrong order; keep `init`'s order, "
                    f"one entry per layer"
                )
            raise ValueError(message + ".")

    def __call__(
        self,
        params: Sequence[Any],
        x: jax.Array = REQUIRED,
        *,
        mask: jax.Array | None = None,
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

        def mark(layer, p):
            frozen = getattr(layer, "non_trainable", ())
            if isinstance(p, dict):
                return {
                    k: (k not in frozen)
                    if not isinstance(v, (dict, list))
                    else jax.tree.map(lambda _: True, v)
                    for k, v in p.items()
                }
            return jax.tree.map(lambda _: True, p)

        return [mark(layer, p) for layer, p in zip(self.layers, params)]


def _format_shape(shape: Any) -> str:
    return (
        "("
        + ", ".join("None" if d is None else str(d) for d in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


def summary(
    model: Sequential,
    input_shape: Shape,
    print_fn: Callable[[str], None] | None = print,
) -> str:
    """Prints (and returns) Keras' model summary table.

    Args:
      model: a `Sequential`.
      input_shape: the model's input shape, None for unknown sizes (e.g.
        ``(None, None)`` for token ids of any batch and length).
      print_fn: where to print each line; None prints nothing.

    Returns:
      The table as one string.

    Example:
      >>> from jaxrnn.layers import Dense, Embedding, LSTM
      >>> model = Sequential([Embedding(1000, 64), LSTM(128), Dense(10)])
      >>> text = summary(model, (None, None))
      Model: "sequential"
      _________________________________________________________________
      Layer (type)                 Output Shape              Param #
      =================================================================
      embedding (Embedding)        (None, None, 64)          64000
      _________________________________________________________________
      lstm (LSTM)                  (None, 128)               98816
      _________________________________________________________________
      dense (Dense)                (None, 10)                1290
      =================================================================
      Total params: 164,106
      Trainable params: 164,106
      Non-trainable params: 0
      _________________________________________________________________
    """
    params_shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), input_shape)
    )
    mask = model.trainable_mask(params_shapes)
    sizes = [math.prod(leaf.shape) for leaf in jax.tree.leaves(params_shapes)]
    trainable = sum(s for s, t in zip(sizes, jax.tree.leaves(mask)) if t)
    rows = [
        (
            f"{name} ({type(layer).__name__})",
            _format_shape(shape),
            sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(p)),
        )
        for name, layer, shape, p in zip(
            model.layer_names(),
            model.layers,
            model.output_shapes(input_shape),
            params_shapes,
        )
    ]
    # Keras' 65-character layout (29, 26, 10), widened where a cell would
    # not fit: tf.keras cut "bidirectional (Bidirectional)" short instead.
    widths = [
        max([least] + [len(str(r[col])) + 1 for r in rows])
        for col, least in enumerate((29, 26, 10))
    ]
    rule = sum(widths)

    def row(*cells):
        # A cell at least one space wider than its text, as Keras pads.
        return "".join(
            (str(c) + " ").ljust(w) for c, w in zip(cells, widths)
        ).rstrip()

    lines = [
        f'Model: "{model.name}"',
        "_" * rule,
        row("Layer (type)", "Output Shape", "Param #"),
        "=" * rule,
    ]
    for i, cells in enumerate(rows):
        if i:
            lines.append("_" * rule)
        lines.append(row(*cells))
    total = sum(sizes)
    lines += [
        "=" * rule,
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        "_" * rule,
    ]
    text = "\n".join(lines)
    if print_fn is not None:
        for line in lines:
            print_fn(line)
    return text
