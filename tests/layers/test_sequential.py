"""Sequential: params, mask propagation, training updates, summary."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxrnn.layers import (GRU, LSTM, BatchNormalization, Dense, Embedding,
                           Sequential, SimpleRNN, summary)


def test_summary_of_the_reference_models():
    text = summary(Sequential([Embedding(1000, 64), LSTM(128),
                               Dense(10, activation="softmax")]),
                   (None, None), print_fn=None)
    assert "embedding (Embedding)        (None, None, 64)          64000" in text
    assert "lstm (LSTM)                  (None, 128)               98816" in text
    assert "dense (Dense)                (None, 10)                1290" in text
    assert "Total params: 164,106" in text
    text = summary(Sequential([Embedding(1000, 64), GRU(256, return_sequences=True),
                               SimpleRNN(128), Dense(10, activation="softmax")]),
                   (None, None), print_fn=None)
    for line in ("gru (GRU)                    (None, None, 256)         247296",
                 "simple_rnn (SimpleRNN)       (None, 128)               49280",
                 "Total params: 361,866", "Non-trainable params: 0"):
        assert line in text


def test_summary_counts_batch_norm_statistics_as_non_trainable():
    model = Sequential([LSTM(9, return_sequences=True), BatchNormalization(),
                        Dense(11)])
    text = summary(model, (None, 5, 7), print_fn=None)
    assert "Non-trainable params: 18" in text
    keras_model = keras.Sequential([keras.Input((5, 7)),
                                    keras.layers.LSTM(9, return_sequences=True),
                                    keras.layers.BatchNormalization(),
                                    keras.layers.Dense(11)])
    assert model.param_count((None, 5, 7)) == keras_model.count_params()


def test_layer_names_count_like_keras():
    model = Sequential([LSTM(3, return_sequences=True), LSTM(3), Dense(2), Dense(1)])
    assert model.layer_names() == ["lstm", "lstm_1", "dense", "dense_1"]


def test_embedding_mask_reaches_the_recurrent_layer(key):
    model = Sequential([Embedding(50, 4, mask_zero=True), GRU(5)])
    params = model.init(key, (None, None))
    ids = jnp.array([[7, 3, 9, 0, 0]])
    trimmed = model(params, ids[:, :3])
    np.testing.assert_allclose(model(params, ids), trimmed, atol=1e-6)


def test_mask_stops_after_a_layer_returning_the_last_output(key):
    model = Sequential([Embedding(50, 4, mask_zero=True),
                        LSTM(5, return_sequences=True), LSTM(6), Dense(2)])
    params = model.init(key, (None, None))
    ids = jnp.array([[7, 3, 0], [1, 0, 0]])
    out = model(params, ids)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[1], model(params, ids[1:, :1])[0], atol=1e-6)


def test_training_returns_moved_statistics(key):
    model = Sequential([LSTM(4, return_sequences=True), BatchNormalization(), Dense(3)])
    params = model.init(key, (None, 5, 2))
    x = jax.random.normal(key, (3, 5, 2))
    out, new_params = model.apply(params, x, training=True)
    assert out.shape == (3, 5, 3)
    assert not np.allclose(new_params[1]["moving_mean"], params[1]["moving_mean"])
    np.testing.assert_array_equal(new_params[0]["kernel"], params[0]["kernel"])
    assert model.trainable_mask(params)[1] == {
        "gamma": True, "beta": True, "moving_mean": False,
        "moving_variance": False}
    inference, same = model.apply(params, x)
    assert same == params
    np.testing.assert_array_equal(inference, model(params, x))


def test_sequential_matches_keras(request):
    from keras_helpers import assert_parity, params_from_keras, randomize_keras_weights
    keras_model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(30, 5, mask_zero=True),
        keras.layers.LSTM(6, return_sequences=True),
        keras.layers.GRU(4),
        keras.layers.Dense(3, activation="softmax")])
    randomize_keras_weights(keras_model, 3)
    ids = np.array([[4, 8, 15, 16, 0], [23, 29, 0, 0, 0]], "int32")
    ours = Sequential([Embedding(30, 5, mask_zero=True),
                       LSTM(6, return_sequences=True), GRU(4),
                       Dense(3, activation="softmax")])
    weights = keras_model.get_weights()
    params = [{"embeddings": weights[0]},
              params_from_keras(ours.layers[1].init(jax.random.key(0), (None, None, 5)), weights[1:4]),
              params_from_keras(ours.layers[2].init(jax.random.key(0), (None, None, 6)), weights[4:7]),
              {"kernel": weights[7], "bias": weights[8]}]
    assert_parity(request.node.name, ours(params, jnp.asarray(ids)), keras_model(ids))


def test_rejects_layers_returning_states():
    with pytest.raises(ValueError, match="single output"):
        Sequential([LSTM(3, return_state=True)])


def test_rejects_non_layers():
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        Sequential(["dense"])


def test_params_length_checked(key):
    model = Sequential([Dense(2), Dense(3)])
    params = model.init(key, (None, 4))
    with pytest.raises(ValueError, match="list of 2 entries"):
        model(params[:1], jnp.ones((1, 4)))
