"""Embedding, Dense, TimeDistributed, Dropout: Keras parity and validation."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import assert_parity, randomize_keras_weights

from jaxrnn.layers import (
    LSTM,
    BatchNormalization,
    Dense,
    Dropout,
    Embedding,
    TimeDistributed,
)


def test_embedding_matches_keras(request):
    theirs = keras.layers.Embedding(20, 6, mask_zero=True)
    ids = np.array([[3, 19, 0, 0], [1, 2, 3, 0]])
    theirs(ids)
    randomize_keras_weights(theirs)
    ours = Embedding(20, 6, mask_zero=True)
    params = {"embeddings": theirs.get_weights()[0]}
    assert_parity(
        request.node.name, ours(params, jnp.asarray(ids)), theirs(ids)
    )
    np.testing.assert_array_equal(
        ours.compute_mask(jnp.asarray(ids), None), theirs.compute_mask(ids)
    )
    assert ours.output_shape((None, None)) == (None, None, 6)


def test_embedding_init_matches_keras_distribution(key):
    table = Embedding(500, 64).init(key)["embeddings"]
    assert table.shape == (500, 64)
    assert float(jnp.abs(table).max()) <= 0.05
    np.testing.assert_allclose(
        float(table.std()), 0.1 / np.sqrt(12), rtol=0.05
    )


@pytest.mark.parametrize(
    "dtype", ["float32", "float16", "int8", "uint8", "int16", "bool"]
)
def test_embedding_casts_other_ids_to_int32_as_keras(dtype, request):
    # Floats truncate toward zero (-0.5 and 1.7 look up rows 0 and 1).
    raw = np.array([[1.7, 2.2, -0.5], [3.9, 0.0, 4.0]])
    ids = (raw > 1).astype(dtype) if dtype == "bool" else raw.astype(dtype)
    theirs = keras.layers.Embedding(5, 3)
    theirs(np.zeros((1, 3), "int32"))
    randomize_keras_weights(theirs)
    ours = Embedding(5, 3)
    params = {"embeddings": theirs.get_weights()[0]}
    assert_parity(
        request.node.name, ours(params, jnp.asarray(ids)), theirs(ids)
    )


def test_embedding_mask_zero_reads_the_ids_as_given():
    # Keras' compute_mask compares the raw ids with 0, before any cast.
    ids = jnp.array([[0.0, 0.5, 2.0]])
    np.testing.assert_array_equal(
        Embedding(5, 2, mask_zero=True).compute_mask(ids, None),
        keras.layers.Embedding(5, 2, mask_zero=True).compute_mask(
            np.asarray(ids)
        ),
    )


def test_embedding_rejects_complex_ids(key):
    layer = Embedding(5, 2)
    with pytest.raises(TypeError, match="integer ids.*complex64"):
        layer(layer.init(key), jnp.ones((2, 3), jnp.complex64))


@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_matches_keras_on_any_rank(activation, use_bias, request):
    theirs = keras.layers.Dense(5, activation=activation, use_bias=use_bias)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    theirs(x)
    randomize_keras_weights(theirs)
    ours = Dense(5, activation=activation, use_bias=use_bias)
    weights = theirs.get_weights()
    params = {
        "kernel": weights[0],
        **({"bias": weights[1]} if use_bias else {}),
    }
    assert_parity(request.node.name, ours(params, jnp.asarray(x)), theirs(x))
    assert ours.param_count((None, 3, 4)) == theirs.count_params()


def test_dense_feature_mismatch(key):
    layer = Dense(3)
    with pytest.raises(
        ValueError, match=r"Dense expects inputs \(\.\.\., 4\)"
    ):
        layer(layer.init(key, (None, 4)), jnp.ones((2, 5)))


def test_time_distributed_matches_keras(request):
    theirs = keras.layers.TimeDistributed(
        keras.layers.Dense(3, activation="tanh")
    )
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype("float32")
    theirs(x)
    randomize_keras_weights(theirs)
    ours = TimeDistributed(Dense(3, activation="tanh"))
    kernel, bias = theirs.get_weights()
    out = ours({"kernel": kernel, "bias": bias}, jnp.asarray(x))
    assert_parity(request.node.name, out, theirs(x))
    assert ours.output_shape((None, 5, 4)) == (None, 5, 3)
    assert ours.param_count((None, 5, 4)) == theirs.count_params()


def test_time_distributed_needs_a_time_axis(key):
    with pytest.raises(ValueError, match=r"\(B, T, \.\.\.\)"):
        TimeDistributed(Dense(3)).init(key, (None, 4))


def test_dropout_identity_in_inference_and_scaled_in_training(key):
    x = jnp.ones((200, 50))
    layer = Dropout(0.4)
    np.testing.assert_array_equal(layer({}, x), x)
    y = layer({}, x, key=key, training=True)
    kept = np.asarray(y) != 0
    np.testing.assert_allclose(kept.mean(), 0.6, atol=0.02)
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.6, rtol=1e-6)


def test_dropout_noise_shape_shares_the_mask(key):
    y = Dropout(0.5, noise_shape=(None, 1, None))(
        {}, jnp.ones((4, 6, 3)), key=key, training=True
    )
    np.testing.assert_array_equal(y, jnp.broadcast_to(y[:, :1], y.shape))


def test_dropout_needs_key_in_training():
    with pytest.raises(ValueError, match="key"):
        Dropout(0.5)({}, jnp.ones(3), training=True)


def test_dropout_rate_validated():
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)


def test_time_distributed_dropout_draws_a_mask_per_step():
    layer = TimeDistributed(Dropout(0.5))
    x = jnp.ones((2, 6, 32))
    y = layer(
        layer.init(jax.random.key(0), (2, 6, 32)),
        x,
        key=jax.random.key(1),
        training=True,
    )
    assert y.shape == x.shape
    assert not bool(jnp.all(y[:, 0] == y[:, 3]))
    assert set(np.unique(np.asarray(y)).tolist()) == {0.0, 2.0}


def test_dense_init_rejects_an_int_input_shape(key):
    with pytest.raises(
        TypeError,
        match=r"`input_shape` must be a shape tuple"
        r".*got the int 3.*\(None, 3\)",
    ):
        Dense(2).init(key, 3)


class _MaskedDense:
    """A Dense whose outputs are zero at masked steps: a layer that takes
    a mask, as Keras' time_distributed_test.py::test_masking builds one."""

    def __init__(self, units):
        self.dense = Dense(units, use_bias=False)

    def init(self, key, input_shape):
        return self.dense.init(key, input_shape)

    def output_shape(self, input_shape):
        return self.dense.output_shape(input_shape)

    def __call__(self, params, x, *, mask=None, key=None, training=False):
        y = self.dense(params, x)
        return y if mask is None else y * mask[:, None].astype(y.dtype)


class _NoMaskDense:
    """A layer whose call has no `mask` parameter at all."""

    def __init__(self, units):
        self.dense = Dense(units)

    def init(self, key, input_shape):
        return self.dense.init(key, input_shape)

    def output_shape(self, input_shape):
        return self.dense.output_shape(input_shape)

    def __call__(self, params, x, *, key=None, training=False):
        return self.dense(params, x)


def test_time_distributed_hands_each_step_its_mask(key):
    layer = TimeDistributed(_MaskedDense(2))
    x = jax.random.normal(key, (3, 4, 5))
    params = layer.init(key, x.shape)
    mask = jnp.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], bool)
    y = layer(params, x, mask=mask)
    unmasked = layer(params, x)
    np.testing.assert_array_equal(y, jnp.where(mask[..., None], unmasked, 0))
    assert layer.compute_mask(x, mask) is mask


def test_time_distributed_calls_a_layer_without_mask_unchanged(key):
    layer = TimeDistributed(_NoMaskDense(2))
    x = jax.random.normal(key, (3, 4, 5))
    params = layer.init(key, x.shape)
    np.testing.assert_array_equal(
        layer(params, x, mask=jnp.ones((3, 4), bool)), layer(params, x)
    )


def test_time_distributed_lstm_mask_matches_keras(request):
    """Keras hands a recurrent inner layer its (B, T2) mask slice."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    mask = np.ones((2, 3, 4), bool)
    mask[0, 1, 2:] = mask[1, 2, 1:] = False
    theirs = keras.layers.TimeDistributed(
        keras.layers.LSTM(3, return_sequences=True)
    )
    theirs(x)
    randomize_keras_weights(theirs)
    ours = TimeDistributed(LSTM(3, return_sequences=True))
    kernel, recurrent, bias = theirs.get_weights()
    params = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}
    assert_parity(
        request.node.name,
        ours(params, jnp.asarray(x), mask=jnp.asarray(mask)),
        theirs(x, mask=mask),
    )


def test_time_distributed_batch_norm_mask_matches_keras(request):
    rng = np.random.default_rng(4)
    x = (2 * rng.standard_normal((3, 2, 6, 4)) + 1).astype("float32")
    mask = rng.random((3, 2, 6)) > 0.3
    theirs = keras.layers.TimeDistributed(keras.layers.BatchNormalization())
    theirs(x)
    randomize_keras_weights(theirs)
    gamma, beta, mean, variance = theirs.get_weights()
    params = {
        "gamma": gamma,
        "beta": beta,
        "moving_mean": mean,
        "moving_variance": np.abs(variance),
    }
    ours = TimeDistributed(BatchNormalization())
    assert_parity(
        request.node.name,
        ours(params, jnp.asarray(x), mask=jnp.asarray(mask), training=True),
        theirs(x, mask=mask, training=True),
    )


def test_time_distributed_mask_must_be_bool(key):
    layer = TimeDistributed(Dense(2))
    x = jnp.ones((2, 3, 4))
    with pytest.raises(
        TypeError, match="`mask` must be a bool array, got float32"
    ):
        layer(layer.init(key, x.shape), x, mask=jnp.ones((2, 3)))


def test_time_distributed_mask_needs_batch_and_time_axes(key):
    layer = TimeDistributed(Dense(2))
    x = jnp.ones((2, 3, 4))
    with pytest.raises(ValueError, match=r"mask.*\(B, T\).*got \(2,\)"):
        layer(layer.init(key, x.shape), x, mask=jnp.ones((2,), bool))


def test_dropout_noise_shape_must_broadcast_to_the_inputs(key):
    layer = Dropout(0.5, noise_shape=(None, 2, None))
    with pytest.raises(
        ValueError, match=r"noise_shape.*broadcast.*\(4, 6, 3\)"
    ):
        layer({}, jnp.ones((4, 6, 3)), key=key, training=True)
    with pytest.raises(ValueError, match="noise_shape.*rank 2"):
        layer({}, jnp.ones((4, 6)), key=key, training=True)


def test_dropout_with_noise_shape_stays_hashable():
    assert hash(Dropout(0.5, noise_shape=[None, 1])) == hash(
        Dropout(0.5, noise_shape=(None, 1))
    )
