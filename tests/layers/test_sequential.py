"""Sequential: params, mask propagation, training updates, summary."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxrnn import LSTMCell, layers
from jaxrnn.layers import (
    GRU,
    LSTM,
    RNN,
    BatchNormalization,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Sequential,
    SimpleRNN,
    TimeDistributed,
    summary,
)


def test_summary_of_the_reference_models():
    text = summary(
        Sequential(
            [Embedding(1000, 64), LSTM(128), Dense(10, activation="softmax")]
        ),
        (None, None),
        print_fn=None,
    )
    assert (
        "embedding (Embedding)        (None, None, 64)          64000" in text
    )
    assert (
        "lstm (LSTM)                  (None, 128)               98816" in text
    )
    assert (
        "dense (Dense)                (None, 10)                1290" in text
    )
    assert "Total params: 164,106" in text
    text = summary(
        Sequential(
            [
                Embedding(1000, 64),
                GRU(256, return_sequences=True),
                SimpleRNN(128),
                Dense(10, activation="softmax"),
            ]
        ),
        (None, None),
        print_fn=None,
    )
    for line in (
        "gru (GRU)                    (None, None, 256)         247296",
        "simple_rnn (SimpleRNN)       (None, 128)               49280",
        "Total params: 361,866",
        "Non-trainable params: 0",
    ):
        assert line in text


def test_summary_counts_batch_norm_statistics_as_non_trainable():
    model = Sequential(
        [LSTM(9, return_sequences=True), BatchNormalization(), Dense(11)]
    )
    text = summary(model, (None, 5, 7), print_fn=None)
    assert "Non-trainable params: 18" in text
    keras_model = keras.Sequential(
        [
            keras.Input((5, 7)),
            keras.layers.LSTM(9, return_sequences=True),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(11),
        ]
    )
    assert model.param_count((None, 5, 7)) == keras_model.count_params()


def test_layer_names_count_like_keras():
    model = Sequential(
        [LSTM(3, return_sequences=True), LSTM(3), Dense(2), Dense(1)]
    )
    assert model.layer_names() == ["lstm", "lstm_1", "dense", "dense_1"]


def test_embedding_mask_reaches_the_recurrent_layer(key):
    model = Sequential([Embedding(50, 4, mask_zero=True), GRU(5)])
    params = model.init(key, (None, None))
    ids = jnp.array([[7, 3, 9, 0, 0]])
    trimmed = model(params, ids[:, :3])
    np.testing.assert_allclose(model(params, ids), trimmed, atol=1e-6)


def test_mask_stops_after_a_layer_returning_the_last_output(key):
    model = Sequential(
        [
            Embedding(50, 4, mask_zero=True),
            LSTM(5, return_sequences=True),
            LSTM(6),
            Dense(2),
        ]
    )
    params = model.init(key, (None, None))
    ids = jnp.array([[7, 3, 0], [1, 0, 0]])
    out = model(params, ids)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(
        out[1], model(params, ids[1:, :1])[0], atol=1e-6
    )


def test_training_returns_moved_statistics(key):
    model = Sequential(
        [LSTM(4, return_sequences=True), BatchNormalization(), Dense(3)]
    )
    params = model.init(key, (None, 5, 2))
    x = jax.random.normal(key, (3, 5, 2))
    out, new_params = model.apply(params, x, training=True)
    assert out.shape == (3, 5, 3)
    assert not np.allclose(
        new_params[1]["moving_mean"], params[1]["moving_mean"]
    )
    np.testing.assert_array_equal(new_params[0]["kernel"], params[0]["kernel"])
    assert model.trainable_mask(params)[1] == {
        "gamma": True,
        "beta": True,
        "moving_mean": False,
        "moving_variance": False,
    }
    inference, same = model.apply(params, x)
    assert same == params
    np.testing.assert_array_equal(inference, model(params, x))


def test_sequential_matches_keras(request):
    from keras_helpers import (
        assert_parity,
        params_from_keras,
        randomize_keras_weights,
    )

    keras_model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(30, 5, mask_zero=True),
            keras.layers.LSTM(6, return_sequences=True),
            keras.layers.GRU(4),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    randomize_keras_weights(keras_model, 3)
    ids = np.array([[4, 8, 15, 16, 0], [23, 29, 0, 0, 0]], "int32")
    ours = Sequential(
        [
            Embedding(30, 5, mask_zero=True),
            LSTM(6, return_sequences=True),
            GRU(4),
            Dense(3, activation="softmax"),
        ]
    )
    weights = keras_model.get_weights()
    params = [
        {"embeddings": weights[0]},
        params_from_keras(
            ours.layers[1].init(jax.random.key(0), (None, None, 5)),
            weights[1:4],
        ),
        params_from_keras(
            ours.layers[2].init(jax.random.key(0), (None, None, 6)),
            weights[4:7],
        ),
        {"kernel": weights[7], "bias": weights[8]},
    ]
    assert_parity(
        request.node.name, ours(params, jnp.asarray(ids)), keras_model(ids)
    )


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


# A recurrent layer returning only its last output, then one needing
# sequences: in a batched model Keras refuses ("expected ndim=3").
NEEDS_SEQUENCES = {
    "LSTM": lambda: [LSTM(4), LSTM(3)],
    "GRU after Dropout": lambda: [GRU(4), Dropout(0.1), GRU(3)],
    "Bidirectional": lambda: [Bidirectional(LSTM(4)), LSTM(3)],
    "into Bidirectional": lambda: [LSTM(4), Bidirectional(GRU(3))],
    "RNN": lambda: [RNN(LSTMCell(4)), SimpleRNN(3)],
    "TimeDistributed": lambda: [LSTM(4), TimeDistributed(Dense(2))],
}


@pytest.mark.parametrize(
    "layers", NEEDS_SEQUENCES.values(), ids=NEEDS_SEQUENCES.keys()
)
@pytest.mark.parametrize("input_shape", [(None, 6, 3), (2, 6, 3)])
def test_batched_init_refuses_a_layer_after_the_last_output(
    layers, input_shape, key
):
    with pytest.raises(
        ValueError,
        match=r"batched, got \(\w+, \d\).*"
        r"return_sequences=True on layers\[0\]",
    ):
        Sequential(layers()).init(key, input_shape)


@pytest.mark.parametrize(
    "layers", NEEDS_SEQUENCES.values(), ids=NEEDS_SEQUENCES.keys()
)
def test_batched_call_refuses_a_layer_after_the_last_output(layers, key):
    model = Sequential(layers())
    # Params fit (each layer's own, for the input it would need), so only
    # the ranks are wrong: (4, H) read as one unbatched (T, D) sequence.
    first = model.layers[0].init(key, (None, 6, 3))
    rest = [
        layer.init(key, (None, 6, 4)) if not isinstance(layer, Dropout) else {}
        for layer in model.layers[1:]
    ]
    with pytest.raises(
        ValueError,
        match=r"batched, got \(4, \d\).*"
        r"return_sequences=True on layers\[0\]",
    ):
        model([first, *rest], jnp.ones((4, 6, 3)))


def test_embedding_model_with_ids_is_batched(key):
    model = Sequential([Embedding(10, 3), LSTM(4), LSTM(2)])
    with pytest.raises(
        ValueError,
        match="`input_shape` \\(None, None\\) is "
        "batched.*return_sequences=True on layers\\[1\\]",
    ):
        model.init(key, (None, None))


def test_stacked_model_runs_unbatched_and_under_vmap(key):
    model = Sequential([LSTM(4, return_sequences=True), GRU(3), Dense(2)])
    params = model.init(key, (None, 6, 3))
    x = jnp.asarray(
        np.random.default_rng(0).standard_normal((5, 6, 3)), jnp.float32
    )
    batched = model(params, x)
    assert batched.shape == (5, 2)
    np.testing.assert_allclose(
        jax.vmap(lambda e: model(params, e))(x), batched, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        model(params, x[1]), batched[1], rtol=1e-5, atol=1e-6
    )


def test_unbatched_model_names_return_sequences_too(key):
    with pytest.raises(
        ValueError,
        match=r"unbatched, got \(4,\).*"
        r"return_sequences=True on layers\[0\]",
    ):
        Sequential([LSTM(4), LSTM(3)]).init(key, (6, 3))


def test_init_rejects_an_int_input_shape(key):
    with pytest.raises(
        TypeError,
        match=r"`input_shape` must be a shape "
        r"tuple.*got the int 3.*\(None, None, 3\)",
    ):
        Sequential([LSTM(4)]).init(key, 3)


def test_params_in_the_wrong_order_name_the_layer(key):
    model = Sequential([Embedding(10, 3), LSTM(4), Dense(2)])
    params = model.init(key, (None, None))
    with pytest.raises(
        ValueError,
        match=r"params\[0\] does not fit layers"
        r"\[0\] \(Embedding\): it expects keys \['embeddings'\], "
        r"got keys \['bias', 'kernel', 'recurrent_kernel'\].*"
        r"layers\[1\] \(LSTM\).*wrong order",
    ):
        model([params[1], params[0], params[2]], jnp.array([[1, 2, 3]]))


def test_params_missing_a_key_name_the_layer(key):
    model = Sequential([Embedding(10, 3), LSTM(4), Dense(2)])
    params = model.init(key, (None, None))
    broken = {k: v for k, v in params[1].items() if k != "bias"}
    with pytest.raises(
        ValueError,
        match=r"params\[1\] does not fit layers"
        r"\[1\] \(LSTM\).*got keys \['kernel', "
        r"'recurrent_kernel'\]\.$",
    ):
        model([params[0], broken, params[2]], jnp.array([[1, 2, 3]]))


def test_swapped_params_of_layers_with_the_same_keys_name_the_order(key):
    model = Sequential([LSTM(8, return_sequences=True), GRU(4), Dense(2)])
    params = model.init(key, (None, None, 3))
    with pytest.raises(
        ValueError,
        match=r"params\[0\] does not fit "
        r"layers\[0\] \(LSTM\): its arrays have the shapes of "
        r"layers\[1\] \(GRU\)'s params: params may be in the "
        r"wrong order",
    ):
        model([params[1], params[0], params[2]], jnp.ones((2, 5, 3)))


def test_time_distributed_after_a_last_output_in_an_unbatched_model(key):
    model = Sequential([LSTM(8), TimeDistributed(Dense(2))])
    with pytest.raises(
        ValueError,
        match=r"TimeDistributed needs inputs "
        r"\(B, T, \.\.\.\), got input_shape \(8,\)",
    ):
        model.init(key, (5, 3))


def test_summary_method_prints_the_free_functions_table():
    model = Sequential([Embedding(1000, 64), LSTM(128), Dense(10)])
    lines = []
    text = model.summary((None, None), print_fn=lines.append)
    assert (
        text == "\n".join(lines) == summary(model, (None, None), print_fn=None)
    )
    assert model.summary((None, None), print_fn=None) == text


def test_summary_widens_the_name_column_for_bidirectional_stacks():
    """The Bidirectional stack of Keras' RNN guide; its numbers are Keras'
    ``model.summary()``'s, where tf.keras cut the names short
    ("bidirectional (Bidirection")."""
    model = Sequential(
        [
            Bidirectional(LSTM(64, return_sequences=True)),
            Bidirectional(LSTM(32)),
            Dense(10),
        ]
    )
    lines = model.summary((None, 5, 10), print_fn=None).splitlines()
    assert lines[2:9] == [
        "Layer (type)                    Output Shape              Param #",
        "=" * 68,
        "bidirectional (Bidirectional)   (None, 5, 128)            38400",
        "_" * 68,
        "bidirectional_1 (Bidirectional) (None, 64)                41216",
        "_" * 68,
        "dense (Dense)                   (None, 10)                650",
    ]
    assert "Total params: 80,266" in lines


def test_summary_column_fits_a_long_layer_name():
    class AVeryLongCustomRecurrentWrapperName(Bidirectional):
        pass

    model = Sequential(
        [
            AVeryLongCustomRecurrentWrapperName(GRU(4, return_sequences=True)),
            Dense(2),
        ]
    )
    lines = model.summary((None, 6, 3), print_fn=None).splitlines()
    name = (
        "a_very_long_custom_recurrent_wrapper_name "
        "(AVeryLongCustomRecurrentWrapperName)"
    )
    shape_column = len(name) + 1
    assert lines[4] == name + " (None, 6, 8)" + " " * 14 + "216"
    assert lines[2].index("Output Shape") == shape_column
    assert lines[6].index("(None, 6, 2)") == shape_column
    assert lines[1] == "_" * (shape_column + 36)


def test_count_params_matches_keras():
    keras_model = keras.Sequential(
        [
            keras.Input((5, 10)),
            keras.layers.Bidirectional(
                keras.layers.LSTM(8, return_sequences=True)
            ),
            keras.layers.GRU(4),
            keras.layers.Dense(3),
        ]
    )
    model = Sequential(
        [Bidirectional(LSTM(8, return_sequences=True)), GRU(4), Dense(3)]
    )
    assert model.count_params((None, 5, 10)) == keras_model.count_params()


@pytest.mark.parametrize("last", ["sequences", "last output"])
def test_compute_mask_matches_the_keras_output_mask(last):
    """The mask Keras attaches to the model's output (tf.keras'
    ``Sequential.compute_mask``; Keras 3's returns the incoming mask)."""
    from keras.src.backend import get_keras_mask

    sequences = last == "sequences"
    keras_model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(30, 4, mask_zero=True),
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.GRU(2, return_sequences=sequences),
        ]
    )
    model = Sequential(
        [
            Embedding(30, 4, mask_zero=True),
            LSTM(3, return_sequences=True),
            GRU(2, return_sequences=sequences),
        ]
    )
    ids = np.array([[4, 8, 15, 0], [23, 0, 0, 0]], "int32")
    theirs = get_keras_mask(keras_model(ids))
    mine = model.compute_mask(jnp.asarray(ids))
    if sequences:
        np.testing.assert_array_equal(mine, theirs)
    else:
        assert mine is None and theirs is None


def test_compute_mask_passes_a_given_mask_through(key):
    model = Sequential([LSTM(3, return_sequences=True), Dense(2)])
    mask = jnp.array([[True, False, True]])
    np.testing.assert_array_equal(
        model.compute_mask(jnp.ones((1, 3, 4)), mask), mask
    )
    assert model.compute_mask(jnp.ones((1, 3, 4))) is None
    with pytest.raises(TypeError, match="`mask` must be boolean, got int32"):
        model.compute_mask(jnp.ones((1, 3, 4)), jnp.array([[1, 0, 1]]))


class _NonZeroMask(Dense):
    """A Dense whose mask comes from its inputs' values, as Keras'
    Masking: a step is valid where its first feature is not zero."""

    def compute_mask(self, inputs, mask):
        return jnp.asarray(inputs)[..., 0] != 0


def test_compute_mask_of_a_value_mask_after_the_first_layer_needs_params(key):
    model = Sequential([Dense(2, use_bias=False), _NonZeroMask(3)])
    x = jnp.array([[[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]]])
    with pytest.raises(
        ValueError,
        match=r"layers\[1\] \(_NonZeroMask\) "
        r"computes its mask from its inputs' values.*pass "
        r"`params`",
    ):
        model.compute_mask(x)
    params = model.init(key, (None, 3, 2))
    np.testing.assert_array_equal(
        model.compute_mask(x, params=params), [[True, False, True]]
    )


def test_a_nested_sequential_hands_on_its_output_mask(key):
    """A Sequential inside another passes on the mask its own layers make
    (Embedding's), as a Keras model used as a layer does."""
    inner = Sequential(
        [Embedding(30, 4, mask_zero=True), LSTM(5, return_sequences=True)]
    )
    model = Sequential([inner, GRU(3)])
    flat = Sequential([*inner.layers, GRU(3)])
    params = model.init(key, (None, None))
    ids = jnp.array([[4, 8, 0, 0], [9, 1, 2, 0]])
    np.testing.assert_allclose(
        model(params, ids), flat([*params[0], params[1]], ids), atol=1e-6
    )
    np.testing.assert_array_equal(inner.compute_mask(ids), ids != 0)


def test_sequence_layers_refuse_a_last_output_in_a_batched_model():
    """Conv1D and the 1D poolings read (B, T, C): a recurrent layer's (B, H)
    last output reaching one is refused, not read as one unbatched (T, C)."""
    for layer in (
        layers.Conv1D(2, 1),
        layers.MaxPooling1D(1),
        layers.GlobalAveragePooling1D(),
        layers.GlobalMaxPooling1D(),
    ):
        model = layers.Sequential([layers.LSTM(4), layer])
        with pytest.raises(
            ValueError,
            match=r"layers\[1\] \(\w+\) needs "
            r"inputs of rank 3.*return_sequences=True",
        ):
            model.init(jax.random.key(0), (None, None, 3))
