"""Embedding, Dense, TimeDistributed, Dropout: Keras parity and validation."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxrnn.layers import Dense, Dropout, Embedding, TimeDistributed
from keras_helpers import assert_parity, randomize_keras_weights


def test_embedding_matches_keras(request):
    theirs = keras.layers.Embedding(20, 6, mask_zero=True)
    ids = np.array([[3, 19, 0, 0], [1, 2, 3, 0]])
    theirs(ids)
    randomize_keras_weights(theirs)
    ours = Embedding(20, 6, mask_zero=True)
    params = {"embeddings": theirs.get_weights()[0]}
    assert_parity(request.node.name, ours(params, jnp.asarray(ids)), theirs(ids))
    np.testing.assert_array_equal(ours.compute_mask(jnp.asarray(ids), None),
                                  theirs.compute_mask(ids))
    assert ours.output_shape((None, None)) == (None, None, 6)


def test_embedding_init_matches_keras_distribution(key):
    table = Embedding(500, 64).init(key)["embeddings"]
    assert table.shape == (500, 64)
    assert float(jnp.abs(table).max()) <= 0.05
    np.testing.assert_allclose(float(table.std()), 0.1 / np.sqrt(12), rtol=0.05)


def test_embedding_rejects_float_ids(key):
    layer = Embedding(5, 2)
    with pytest.raises(TypeError, match="integer ids"):
        layer(layer.init(key), jnp.ones((2, 3)))


@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_matches_keras_on_any_rank(activation, use_bias, request):
    theirs = keras.layers.Dense(5, activation=activation, use_bias=use_bias)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    theirs(x)
    randomize_keras_weights(theirs)
    ours = Dense(5, activation=activation, use_bias=use_bias)
    weights = theirs.get_weights()
    params = {"kernel": weights[0], **({"bias": weights[1]} if use_bias else {})}
    assert_parity(request.node.name, ours(params, jnp.asarray(x)), theirs(x))
    assert ours.param_count((None, 3, 4)) == theirs.count_params()


def test_dense_feature_mismatch(key):
    layer = Dense(3)
    with pytest.raises(ValueError, match=r"Dense expects inputs \(\.\.\., 4\)"):
        layer(layer.init(key, (None, 4)), jnp.ones((2, 5)))


def test_time_distributed_matches_keras(request):
    theirs = keras.layers.TimeDistributed(keras.layers.Dense(3, activation="tanh"))
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
    y = Dropout(0.5, noise_shape=(None, 1, None))({}, jnp.ones((4, 6, 3)),
                                                  key=key, training=True)
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
    y = layer(layer.init(jax.random.key(0), (2, 6, 32)), x,
              key=jax.random.key(1), training=True)
    assert y.shape == x.shape
    assert not bool(jnp.all(y[:, 0] == y[:, 3]))
    assert set(np.unique(np.asarray(y)).tolist()) == {0.0, 2.0}


def test_dense_init_rejects_an_int_input_shape(key):
    with pytest.raises(TypeError, match=r"`input_shape` must be a shape tuple"
                       r".*got the int 3.*\(None, 3\)"):
        Dense(2).init(key, 3)
