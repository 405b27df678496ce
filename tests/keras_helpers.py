"""Helpers for parity tests against real Keras 3 (JAX backend)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np

PARITY_ERRORS: dict[str, float] = {}
L = keras.layers
# The interop suites' batch, steps, features and vocabulary size.
B, T, D, V = 3, 6, 5, 12


def randomize_keras_weights(
    layer, seed: int = 0, scale: float = 0.5, positive_variances: bool = False
) -> None:
    """Random, distinct weights: constant ones would hide swapped gates.

    With `positive_variances`, variances and standard deviations (a batch
    norm's moving variance) are drawn positive, so inference stays finite.
    """
    rng = np.random.default_rng(seed)
    values = []
    for variable in layer.weights:
        value = scale * rng.standard_normal(variable.shape)
        if positive_variances and (
            "variance" in variable.path or "stddev" in variable.path
        ):
            value = np.abs(value) + 0.5
        values.append(value.astype(variable.dtype))
    layer.set_weights(values)


def randomize(keras_obj, seed: int = 0) -> None:
    """The interop suites' random Keras weights: positive variances."""
    randomize_keras_weights(keras_obj, seed, positive_variances=True)


def perturb(params, seed: int = 1):
    """Other random params of the same layout, variances kept positive."""
    rng = np.random.default_rng(seed)

    def move(path, leaf):
        value = np.asarray(leaf, np.float32) + 0.3 * rng.standard_normal(
            leaf.shape
        )
        if "moving_variance" in jax.tree_util.keystr(path):
            value = np.abs(value) + 0.5
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(move, params)


def random_params_for(layer, input_shape, seed: int = 0):
    """Random params of `layer`'s layout for `input_shape`, from shapes
    alone: no initializer of Keras' or jaxrnn's compiles."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda leaf: jnp.asarray(
            0.5 * rng.standard_normal(leaf.shape), leaf.dtype
        ),
        param_shapes_for(layer, input_shape),
    )


def param_shapes_for(layer, input_shape):
    """`layer`'s params for `input_shape` as shapes only: eager
    initialisation compiles for seconds per shape."""
    return jax.eval_shape(lambda: layer.init(jax.random.key(0), input_shape))


def float_inputs(seed: int = 0, shape: tuple[int, ...] = (B, T, D)):
    """Standard normal float32 inputs, (B, T, D) by default."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def token_ids(seed: int = 0):
    """Random ids in [1, V) with zeros (padding) at the end of two rows."""
    ids = np.random.default_rng(seed).integers(1, V, (B, T)).astype("int32")
    ids[1, 4:] = 0
    ids[2, 2:] = 0
    return ids


# Keras Sequential models the weight-file and live-conversion suites share:
# (input kind, layers). User-chosen names play no part in a file's layout.
KERAS_MODELS = {
    "embedding_mask_lstm_dense": (
        "ids",
        lambda: [
            L.Embedding(V, 4, mask_zero=True, name="tokens"),
            L.LSTM(5, name="encoder"),
            L.Dense(3, name="head"),
        ],
    ),
    "embedding_gru_simple_rnn_dense": (
        "ids",
        lambda: [
            L.Embedding(V, 4),
            L.GRU(5, return_sequences=True),
            L.SimpleRNN(4),
            L.Dense(2, activation="softmax"),
        ],
    ),
    "lstm_batch_norm_lstm_dense": (
        "floats",
        lambda: [
            L.LSTM(5, return_sequences=True),
            L.BatchNormalization(),
            L.LSTM(4),
            L.Dense(2),
        ],
    ),
    "simple_rnn_time_distributed": (
        "floats",
        lambda: [
            L.SimpleRNN(4, return_sequences=True),
            L.TimeDistributed(L.Dense(3)),
        ],
    ),
    "bidirectional_lstm": ("floats", lambda: [L.Bidirectional(L.LSTM(4))]),
    "stacked_lstm_cells": (
        "floats",
        lambda: [L.RNN([L.LSTMCell(4), L.LSTMCell(3)])],
    ),
    "masked_everything": (
        "ids",
        lambda: [
            L.Embedding(V, 4, mask_zero=True),
            L.GRU(5, return_sequences=True),
            L.BatchNormalization(center=False),
            L.Bidirectional(L.LSTM(3, return_sequences=True)),
            L.RNN([L.LSTMCell(4), L.SimpleRNNCell(3)], return_sequences=True),
            L.LayerNormalization(scale=False),
            L.Dropout(0.3),
            L.GRU(3, reset_after=False, return_sequences=True),
            L.TimeDistributed(L.Dense(2, use_bias=False)),
        ],
    ),
}


def keras_model(case: str, seed: int = 0):
    """`KERAS_MODELS[case]` built, with random weights, and inputs for it."""
    kind, layers = KERAS_MODELS[case]
    if kind == "ids":
        inputs, x = keras.Input((T,), dtype="int32"), token_ids(seed)
    else:
        inputs, x = keras.Input((T, D)), float_inputs(seed)
    model = keras.Sequential([inputs, *layers()])
    randomize(model, seed)
    return model, x


def params_from_keras(template, weights: list[np.ndarray]):
    """Fills a jaxrnn params pytree from Keras' ``get_weights()`` order.

    Keras orders each cell's weights kernel, recurrent_kernel, bias; stacked
    cells in stack order; Bidirectional forward then backward.
    """
    weights = list(weights)

    def fill(p):
        if isinstance(p, dict) and "kernel" in p:
            out = {
                "kernel": weights.pop(0),
                "recurrent_kernel": weights.pop(0),
            }
            if "bias" in p:
                out["bias"] = weights.pop(0)
            for name in out:
                assert out[name].shape == p[name].shape, (
                    name,
                    out[name].shape,
                )
            return out
        if isinstance(p, list):
            return [fill(q) for q in p]
        return {"forward": fill(p["forward"]), "backward": fill(p["backward"])}

    params = fill(template)
    assert not weights, f"{len(weights)} Keras weights left over"
    return params


def flat(outputs) -> list[np.ndarray]:
    """Flattens a layer's return value (array, list, nested states)."""
    if isinstance(outputs, (list, tuple)):
        return [a for o in outputs for a in flat(o)]
    return [np.asarray(outputs)]


def relative_to_reference(ours, theirs):
    """Both lists of arrays (gradients) divided, leaf by leaf, by the
    reference's largest magnitude (1 where it is all zeros), for a
    relative `assert_parity` of float32 gradients summed over many
    steps."""
    scales = [float(np.max(np.abs(np.asarray(t)))) or 1.0 for t in theirs]
    return (
        [np.asarray(a) / s for a, s in zip(ours, scales)],
        [np.asarray(b) / s for b, s in zip(theirs, scales)],
    )


def assert_parity(name: str, ours, theirs, atol: float = 1e-5) -> float:
    """Compares flattened outputs; records the worst error under `name`."""
    ours, theirs = flat(ours), flat(theirs)
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    worst = 0.0
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape, (a.shape, b.shape)
        error = float(np.max(np.abs(a - b))) if a.size else 0.0
        # NaN anywhere fails: max() would silently skip a NaN error.
        worst = max(worst, error if np.isfinite(error) else np.inf)
    PARITY_ERRORS[name] = max(PARITY_ERRORS.get(name, 0.0), worst)
    assert worst <= atol, f"{name}: max abs error {worst:.3g} > {atol}"
    return worst
