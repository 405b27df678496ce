"""Sequential models and Keras-style summaries."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any, Callable, Sequence

import jax
import numpy as np

from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.core import TimeDistributed
from jaxrnn.cells._base import REQUIRED
from jaxrnn.layers.recurrent import (RecurrentLayer, _shape_tuple, check_layer_call,
                                     count_params)

Shape = Sequence[Any]


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


def _unbatched_rank(layer: Any) -> int | None:
    """The rank of one unbatched example a sequence layer reads: 2 for
    (T, D), 2 + spatial axes for ConvLSTM; None for a layer that takes any
    rank (Dense, Embedding, ...)."""
    if isinstance(layer, Sequential):
        return _unbatched_rank(layer.layers[0]) if layer.layers else None
    inner = layer.layer if isinstance(layer, Bidirectional) else layer
    if isinstance(inner, RecurrentLayer):
        return 1 + getattr(inner.cell, "input_ndim", 1)
    return None


def _leaf_paths(tree: Any) -> tuple[str, ...]:
    # Paths, not treedefs: a list where init gives a tuple is no error.
    return tuple(sorted(jax.tree_util.keystr(path) for path, _ in
                        jax.tree_util.tree_flatten_with_path(tree)[0]))


def _describe(params: Any) -> str:
    if isinstance(params, dict):
        return f"keys {sorted(map(str, params))}"
    if isinstance(params, (list, tuple)):
        return f"a {type(params).__name__} of {len(params)}"
    return type(params).__name__


def _leaf_shapes(tree: Any) -> tuple:
    return tuple(sorted((jax.tree_util.keystr(path), tuple(np.shape(leaf)))
                        for path, leaf in
                        jax.tree_util.tree_flatten_with_path(tree)[0]))


def _init_params_paths(model: "Sequential", shape: tuple) -> tuple:
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), shape))
    return (tuple(map(_leaf_paths, shapes)), tuple(map(_describe, shapes)),
            tuple(map(_leaf_shapes, shapes)))


_cached_params_paths = functools.lru_cache(maxsize=64)(_init_params_paths)


@dataclasses.dataclass(frozen=True, init=False)
class Sequential:
    """Layers applied one after another, Keras' ``Sequential``.

    The mask produced by ``Embedding(mask_zero=True)`` (or passed in) flows
    to the next layers as in Keras: most layers pass it on, a recurrent layer
    passes it on only when it returns sequences.

    Args:
      layers: the layers, each with ``init(key, input_shape)``,
        ``layer(params, x, *, mask, key, training)`` and ``output_shape``.
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

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn.layers import Dense, Embedding, LSTM
      >>> model = Sequential([Embedding(100, 8, mask_zero=True), LSTM(16), Dense(2)])
      >>> params = model.init(jax.random.key(0), (None, None))
      >>> model(params, jnp.array([[5, 7, 0, 0]])).shape
      (1, 2)
    """

    layers: tuple[Any, ...]
    name: str = "sequential"

    def __init__(self, layers: Sequence[Any], name: str = "sequential"):
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
            raise TypeError("`layers` must be a list of layers, got "
                            f"{type(layers).__name__}.")
        for i, layer in enumerate(layers):
            if not all(hasattr(layer, m) for m in ("init", "output_shape")) \
                    or not callable(layer):
                raise TypeError(f"layers[{i}] ({type(layer).__name__}) is not a "
                                "layer: it needs init, output_shape and __call__.")
            if getattr(layer, "return_state", False) or getattr(layer, "stateful", False):
                raise ValueError(f"layers[{i}] returns its states; a Sequential "
                                 "layer must return a single output.")
        object.__setattr__(self, "layers", tuple(layers))
        object.__setattr__(self, "name", name)

    def layer_names(self) -> list[str]:
        """Keras' default names, one per layer: ``lstm``, ``lstm_1``, ...

        Example:
          >>> from jaxrnn.layers import Dense, LSTM
          >>> Sequential([LSTM(4, return_sequences=True), LSTM(4), Dense(1)]).layer_names()
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

    def _check_rank(self, i: int, shape: tuple, batched: bool | None,
                    model_shape: tuple, name: str) -> bool | None:
        """Whether the model is batched, as the first recurrent layer's
        input says; later ones must agree."""
        layer, rank = self.layers[i], _unbatched_rank(self.layers[i])
        if rank is None:
            if batched and isinstance(layer, TimeDistributed) and len(shape) < 3:
                self._rank_error(i, shape, "rank 3 or more, (B, T, ...),",
                                 batched, model_shape, name)
            return batched
        if batched is None:
            # Wrong ranks here are the layer's own error to raise.
            return len(shape) == rank + 1 if len(shape) - rank in (0, 1) else None
        if len(shape) != rank + batched:
            layout = ("(B, T, " if batched else "(T, ") + (
                "D)" if rank == 2 else f"*S, C) with {rank - 2} spatial axes")
            self._rank_error(i, shape, f"rank {rank + batched}, {layout},",
                             batched, model_shape, name)
        return batched

    def _rank_error(self, i: int, shape: tuple, want: str, batched: bool,
                    model_shape: tuple, name: str) -> None:
        message = (f"layers[{i}] ({type(self.layers[i]).__name__}) needs "
                   f"inputs of {want} as the model's `{name}` "
                   f"{tuple(model_shape)} is "
                   f"{'batched' if batched else 'unbatched'}, got "
                   f"{tuple(shape)}")
        previous = [j for j in range(i) if _unbatched_rank(self.layers[j])]
        if previous and not getattr(self.layers[previous[-1]],
                                    "return_sequences", True):
            j = previous[-1]
            message += (f" from layers[{j}] "
                        f"({type(self.layers[j]).__name__}), which returns "
                        f"only its last output: set return_sequences=True "
                        f"on layers[{j}].")
        else:
            message += "."
        raise ValueError(message)

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """The model's output shape."""
        return self.output_shapes(input_shape)[-1] if self.layers else tuple(input_shape)

    def init(self, key: jax.Array, input_shape: Shape) -> list[Any]:
        """Returns a list with each layer's params, in order."""
        shapes = self._walk(input_shape, "input_shape")
        keys = jax.random.split(key, max(len(self.layers), 1))
        return [layer.init(k, shape)
                for layer, k, shape in zip(self.layers, keys, shapes)]

    def apply(self, params: Sequence[Any], x: jax.Array, *,
              mask: jax.Array | None = None, key: jax.Array | None = None,
              training: bool = False) -> tuple[jax.Array, list[Any]]:
        """Runs the layers; returns ``(output, new_params)``.

        Args:
          params: the list from `init`.
          x: the first layer's input (token ids for an `Embedding`).
          mask: an optional bool mask for the first layer, (B, T).
          key: PRNG key for dropout, split between the layers.
          training: dropout on, batch statistics in batch norm.

        Returns:
          The last layer's output and the params with batch-norm moving
          statistics updated (in training; unchanged otherwise).
        """
        if not isinstance(params, (list, tuple)) or len(params) != len(self.layers):
            raise ValueError(f"Sequential params must be a list of "
                             f"{len(self.layers)} entries (one per layer), got "
                             f"{type(params).__name__} of length "
                             f"{len(params) if hasattr(params, '__len__') else '?'}.")
        self._walk(np.shape(x), "inputs")
        self._check_params(params, np.shape(x))
        keys = ([None] * len(self.layers) if key is None
                else list(jax.random.split(key, len(self.layers))))
        new_params = []
        for layer, p, k in zip(self.layers, params, keys):
            if hasattr(layer, "apply"):
                y, p = layer.apply(p, x, mask=mask, key=k, training=training)
            else:
                y = layer(p, x, mask=mask, key=k, training=training)
            if hasattr(layer, "compute_mask"):
                mask = layer.compute_mask(x, mask)
            x = y
            new_params.append(p)
        return x, new_params

    def _check_params(self, params: Sequence[Any], shape: tuple) -> None:
        """Each entry's structure against its layer's `init`, so params in
        the wrong order fail here, by index, not as a KeyError inside."""
        try:
            hash(self)
        except TypeError:  # an unhashable custom layer: no cache
            expected, described, shapes = _init_params_paths(self, tuple(shape))
        else:
            expected, described, shapes = _cached_params_paths(self, tuple(shape))
        got = [_leaf_paths(p) for p in params]
        for i, (want, have) in enumerate(zip(expected, got)):
            if want == have:
                # Same keys: a swap shows in the shapes (LSTM and GRU
                # params); other shape errors are the layer's to explain.
                have_shapes = _leaf_shapes(params[i])
                swapped = [j for j, s in enumerate(shapes)
                           if s == have_shapes and s != shapes[i]]
                if swapped:
                    j = swapped[0]
                    raise ValueError(
                        f"Sequential params[{i}] does not fit layers[{i}] "
                        f"({type(self.layers[i]).__name__}): its arrays have "
                        f"the shapes of layers[{j}] "
                        f"({type(self.layers[j]).__name__})'s params: params "
                        "may be in the wrong order; keep `init`'s order, one "
                        "entry per layer.")
                continue
            message = (f"Sequential params[{i}] does not fit layers[{i}] "
                       f"({type(self.layers[i]).__name__}): it expects "
                       f"{described[i]}, got {_describe(params[i])}")
            fits = [j for j, paths in enumerate(expected) if paths == have]
            if fits:
                message += (f", the params of layers[{fits[0]}] "
                            f"({type(self.layers[fits[0]]).__name__}): params "
                            f"may be in the wrong order; keep `init`'s order, "
                            f"one entry per layer")
            raise ValueError(message + ".")

    def __call__(self, params: Sequence[Any], x: jax.Array = REQUIRED, *,
                 mask: jax.Array | None = None, key: jax.Array | None = None,
                 training: bool = False) -> jax.Array:
        """Runs the layers; returns the output (see `apply` for updates)."""
        check_layer_call(self, x, "x")
        return self.apply(params, x, mask=mask, key=key, training=training)[0]

    def param_count(self, input_shape: Shape) -> int:
        """The number of parameters, trainable or not."""
        return count_params(self, input_shape)

    def trainable_mask(self, params: Sequence[Any]) -> list[Any]:
        """A pytree like `params`: True for trainable arrays, False for
        batch-norm statistics (for ``optax.masked``)."""
        def mark(layer, p):
            frozen = getattr(layer, "non_trainable", ())
            if isinstance(p, dict):
                return {k: (k not in frozen) if not isinstance(v, (dict, list))
                        else jax.tree.map(lambda _: True, v)
                        for k, v in p.items()}
            return jax.tree.map(lambda _: True, p)
        return [mark(layer, p) for layer, p in zip(self.layers, params)]


def _format_shape(shape: Any) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def summary(model: Sequential, input_shape: Shape,
            print_fn: Callable[[str], None] | None = print) -> str:
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
    widths = (29, 26, 10)

    def row(*cells):
        # A cell at least one space wider than its text, as Keras pads.
        return "".join((str(c) + " ").ljust(w)
                       for c, w in zip(cells, widths)).rstrip()

    params_shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), input_shape))
    mask = model.trainable_mask(params_shapes)
    sizes = [math.prod(leaf.shape) for leaf in jax.tree.leaves(params_shapes)]
    trainable = sum(s for s, t in zip(sizes, jax.tree.leaves(mask)) if t)
    lines = [f'Model: "{model.name}"', "_" * 65,
             row("Layer (type)", "Output Shape", "Param #"), "=" * 65]
    shapes = model.output_shapes(input_shape)
    for i, (name, layer, shape, p) in enumerate(zip(
            model.layer_names(), model.layers, shapes, params_shapes)):
        count = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(p))
        if i:
            lines.append("_" * 65)
        lines.append(row(f"{name} ({type(layer).__name__})",
                         _format_shape(shape), count))
    total = sum(sizes)
    lines += ["=" * 65, f"Total params: {total:,}",
              f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * 65]
    text = "\n".join(lines)
    if print_fn is not None:
        for line in lines:
            print_fn(line)
    return text
