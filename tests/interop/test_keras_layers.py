"""Live Keras layers <-> jaxrnn: parity per layer type and for Sequential
models, round trips through `to_keras`, configuration mapping and every
rejected input."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import (
    KERAS_MODELS,
    B,
    D,
    L,
    T,
    V,
    assert_parity,
    float_inputs,
    keras_model,
    perturb,
    randomize,
    token_ids,
)

import jaxrnn
from jaxrnn.interop import from_keras, layer_from_keras, to_keras

# One compilation per distinct layer: equal frozen dataclasses hit the cache.
_apply = jax.jit(lambda layer, params, x: layer(params, x), static_argnums=0)


def run_jaxrnn(layer, params, x):
    return _apply(layer, params, jnp.asarray(x))


def run_keras(model, x):
    """Keras' outputs via `predict`: one compilation, reused after weights
    change, where eager calls retrace the recurrence every time."""
    return model.predict(x, batch_size=len(x), verbose=0)


# Recurrent variants the Sequential cases below leave out; the recurrent
# math itself is covered by tests/layers.
LAYER_CASES = {
    "simple_rnn_relu_no_bias": lambda: L.SimpleRNN(
        4, activation="relu", use_bias=False, return_sequences=True
    ),
    "lstm_states_backwards": lambda: L.LSTM(
        4, return_state=True, go_backwards=True, unit_forget_bias=False
    ),
    "rnn_gru_cell_v1": lambda: L.RNN(
        L.GRUCell(4, reset_after=False, recurrent_activation="hard_sigmoid"),
        return_sequences=True,
    ),
    "rnn_mixed_stack": lambda: L.RNN(
        [L.SimpleRNNCell(3), L.GRUCell(4)], return_state=True
    ),
    "bidirectional_gru_sum": lambda: L.Bidirectional(
        L.GRU(3, return_sequences=True), merge_mode="sum"
    ),
    "bidirectional_backward_layer": lambda: L.Bidirectional(
        L.LSTM(3), backward_layer=L.SimpleRNN(2, go_backwards=True)
    ),
    "embedding_mask_zero": lambda: L.Embedding(V, 4, mask_zero=True),
    "dense_no_bias": lambda: L.Dense(3, activation="tanh", use_bias=False),
    "time_distributed_dense": lambda: L.TimeDistributed(
        L.Dense(2, activation="relu")
    ),
    "dropout": lambda: L.Dropout(0.5),
    "batch_normalization": lambda: L.BatchNormalization(),
    "batch_normalization_bare": lambda: L.BatchNormalization(
        center=False, scale=False, epsilon=0.01
    ),
    "layer_normalization": lambda: L.LayerNormalization(),
    "layer_normalization_no_scale": lambda: L.LayerNormalization(scale=False),
}


def _layer_and_model(case):
    """The Keras layer, a Keras model wrapping it, and inputs."""
    layer = LAYER_CASES[case]()
    if case.startswith("embedding"):
        inputs, x = keras.Input((T,), dtype="int32"), token_ids()
    else:
        inputs, x = keras.Input((T, D)), float_inputs()
    model = keras.Model(inputs, layer(inputs))
    randomize(layer, seed=len(case))
    return layer, model, x


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_keras_and_round_trips(case, request):
    keras_layer, model, x = _layer_and_model(case)
    ours = layer_from_keras(keras_layer)
    assert_parity(
        request.node.name,
        run_jaxrnn(ours, from_keras(keras_layer), x),
        run_keras(model, x),
    )
    params = perturb(from_keras(keras_layer))
    to_keras(params, keras_layer)
    assert_parity(
        request.node.name, run_jaxrnn(ours, params, x), run_keras(model, x)
    )
    assert jax.tree.all(
        jax.tree.map(
            lambda a, b: bool(np.array_equal(a, b)),
            from_keras(keras_layer),
            params,
        )
    )


def test_embedding_mask_matches_keras():
    keras_layer, _, ids = _layer_and_model("embedding_mask_zero")
    ours = layer_from_keras(keras_layer)
    np.testing.assert_array_equal(
        ours.compute_mask(jnp.asarray(ids), None),
        keras_layer.compute_mask(ids),
    )


# masked_everything's parity is test_keras_h5's, through files both ways.
MODEL_CASES = sorted(set(KERAS_MODELS) - {"masked_everything"})


@pytest.mark.parametrize("case", MODEL_CASES)
def test_sequential_matches_keras_and_round_trips(case, request):
    model, x = keras_model(case)
    ours = layer_from_keras(model)
    assert isinstance(ours, jaxrnn.layers.Sequential)
    assert_parity(
        request.node.name,
        run_jaxrnn(ours, from_keras(model), x),
        run_keras(model, x),
    )
    params = perturb(from_keras(model))
    to_keras(params, model)
    assert_parity(
        request.node.name, run_jaxrnn(ours, params, x), run_keras(model, x)
    )


def test_from_keras_layout_and_dtypes():
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            L.Embedding(V, 4),
            L.GRU(5, return_sequences=True),
            L.BatchNormalization(),
            L.Bidirectional(L.LSTM(3, return_sequences=True)),
            L.RNN([L.LSTMCell(4), L.SimpleRNNCell(3)], return_sequences=True),
            L.LayerNormalization(),
            L.Dropout(0.3),
            L.TimeDistributed(L.Dense(2)),
        ]
    )
    params = from_keras(model)
    assert [sorted(p) if isinstance(p, dict) else len(p) for p in params] == [
        ["embeddings"],
        ["bias", "kernel", "recurrent_kernel"],
        ["beta", "gamma", "moving_mean", "moving_variance"],
        ["backward", "forward"],
        2,
        ["beta", "gamma"],
        [],
        ["bias", "kernel"],
    ]
    assert params[1]["bias"].shape == (2, 15)
    assert params[4][1]["recurrent_kernel"].shape == (3, 3)
    assert all(
        isinstance(a, jax.Array) and a.dtype == jnp.float32
        for a in jax.tree.leaves(params)
    )


def test_cells_convert_alone():
    rnn = L.RNN([L.LSTMCell(4), L.GRUCell(3, reset_after=False)])
    rnn.build((B, T, D))
    randomize(rnn)
    stacked = from_keras(rnn.cell)
    assert jax.tree.all(
        jax.tree.map(
            lambda a, b: bool(np.array_equal(a, b)), stacked, from_keras(rnn)
        )
    )
    assert layer_from_keras(rnn.cell) == [
        jaxrnn.LSTMCell(4),
        jaxrnn.GRUCell(3, reset_after=False),
    ]
    assert layer_from_keras(rnn.cell.cells[0]) == jaxrnn.LSTMCell(4)


def test_configuration_maps_to_jaxrnn_fields():
    got = layer_from_keras(
        L.GRU(
            8,
            activation="relu",
            dropout=0.25,
            recurrent_dropout=0.5,
            reset_after=False,
            return_sequences=True,
            go_backwards=True,
            unroll=True,
            kernel_initializer="he_normal",
        )
    )
    assert got == jaxrnn.GRU(
        8,
        activation="relu",
        dropout=0.25,
        recurrent_dropout=0.5,
        reset_after=False,
        return_sequences=True,
        go_backwards=True,
        unroll=True,
        kernel_initializer="he_normal",
    )
    assert layer_from_keras(
        L.Bidirectional(L.LSTM(4), merge_mode="ave")
    ) == jaxrnn.Bidirectional(jaxrnn.LSTM(4), merge_mode="ave")
    assert layer_from_keras(
        L.Embedding(9, 2, mask_zero=True)
    ) == jaxrnn.layers.Embedding(9, 2, mask_zero=True)
    assert layer_from_keras(
        L.Dropout(0.2, noise_shape=(None, 1, None))
    ) == jaxrnn.layers.Dropout(0.2, noise_shape=(None, 1, None))
    assert layer_from_keras(
        L.BatchNormalization(momentum=0.9, epsilon=0.01)
    ) == jaxrnn.layers.BatchNormalization(momentum=0.9, epsilon=0.01)


def test_initializers_with_arguments_keep_jaxrnn_defaults():
    layer = layer_from_keras(
        L.LSTM(
            4,
            kernel_initializer=keras.initializers.RandomUniform(-1.0, 1.0),
            recurrent_initializer=keras.initializers.Orthogonal(seed=3),
            bias_initializer="ones",
        )
    )
    assert (
        layer.kernel_initializer,
        layer.recurrent_initializer,
        layer.bias_initializer,
    ) == ("glorot_uniform", "orthogonal", "ones")


def test_mixed_precision_policy_maps_to_dtypes():
    layer = layer_from_keras(L.LSTM(4, dtype="mixed_bfloat16"))
    assert (jnp.dtype(layer.dtype), jnp.dtype(layer.param_dtype)) == (
        jnp.bfloat16,
        jnp.float32,
    )


def test_importing_jaxrnn_does_not_import_keras():
    code = (
        "import sys, jaxrnn, jaxrnn.interop, jaxrnn.layers; "
        "assert 'keras' not in sys.modules, 'keras imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Rejected inputs.
def test_unsupported_keras_layer():
    with pytest.raises(TypeError, match="conv.*Conv2D is not supported"):
        from_keras(L.Conv2D(2, 3, name="conv"))
    with pytest.raises(TypeError, match="Conv2D is not supported"):
        layer_from_keras(L.Conv2D(2, 3))


def test_unbuilt_keras_layer():
    with pytest.raises(ValueError, match="enc: the Keras LSTM is not built"):
        from_keras(L.LSTM(3, name="enc"))
    with pytest.raises(ValueError, match="not built"):
        to_keras({}, L.Dense(3))


def _built(layer, shape=(B, T, D)):
    layer.build(shape)
    return layer


def test_to_keras_wrong_shape_names_layer_and_array():
    keras_layer = _built(L.LSTM(8, name="lstm_1"))
    params = from_keras(keras_layer)
    params["recurrent_kernel"] = params["recurrent_kernel"][:, :16]
    with pytest.raises(
        ValueError,
        match=r"lstm_1: recurrent_kernel must have "
        r"shape \(8, 32\), got \(8, 16\) "
        r"\(params\['recurrent_kernel'\]\)",
    ):
        to_keras(params, keras_layer)


def test_to_keras_missing_and_unexpected_arrays():
    keras_layer = _built(L.GRU(4, name="gru"))
    params = from_keras(keras_layer)
    del params["bias"]
    with pytest.raises(
        ValueError,
        match=r"gru: params must have keys .*"
        r"missing \['bias'\]",
    ):
        to_keras(params, keras_layer)
    no_bias = _built(L.Dense(3, use_bias=False, name="head"))
    with pytest.raises(ValueError, match=r"head: .*unexpected \['bias'\]"):
        to_keras(
            {
                "kernel": np.zeros((D, 3), "float32"),
                "bias": np.zeros(3, "float32"),
            },
            no_bias,
        )


def test_to_keras_wrong_list_length_and_kind():
    model, _ = keras_model("embedding_mask_lstm_dense")
    params = from_keras(model)
    with pytest.raises(
        ValueError,
        match=r"list of 3 entries \(one per layer\), "
        "got list of length 2",
    ):
        to_keras(params[:2], model)
    with pytest.raises(TypeError, match="list of 3 entries.*got dict"):
        to_keras({"layers": params}, model)


def test_to_keras_bidirectional_needs_both_directions():
    keras_layer = _built(L.Bidirectional(L.GRU(3), name="bi"))
    params = from_keras(keras_layer)
    with pytest.raises(
        ValueError,
        match=r"bi: params must have keys "
        r"\['backward', 'forward'\]",
    ):
        to_keras({"forward": params["forward"]}, keras_layer)


def test_to_keras_stacked_cells_name_the_cell():
    keras_layer = _built(L.RNN([L.LSTMCell(4), L.LSTMCell(3)], name="stack"))
    params = from_keras(keras_layer)
    params[1]["kernel"] = params[1]["kernel"][:2]
    with pytest.raises(
        ValueError,
        match=r"stack.cells\[1\]: kernel must have "
        r"shape \(4, 12\), got \(2, 12\) \(params\[1\]\['kernel'\]\)",
    ):
        to_keras(params, keras_layer)


def test_to_keras_rejects_integer_arrays():
    keras_layer = _built(L.Embedding(V, 2, name="emb"), (B, T))
    with pytest.raises(
        TypeError,
        match="emb: embeddings must have a floating dtype, got int32",
    ):
        to_keras({"embeddings": np.zeros((V, 2), "int32")}, keras_layer)


def test_failed_to_keras_leaves_keras_untouched():
    model, _ = keras_model("lstm_batch_norm_lstm_dense")
    before = [np.array(w) for w in model.get_weights()]
    params = perturb(from_keras(model))
    params[3]["kernel"] = params[3]["kernel"][:1]
    with pytest.raises(ValueError, match="kernel must have shape"):
        to_keras(params, model)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_layer_from_keras_unknown_activation():
    with pytest.raises(
        ValueError,
        match="head: activation 'soft_shrink' has no jaxrnn equivalent",
    ):
        layer_from_keras(L.Dense(2, activation="soft_shrink", name="head"))


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_layer_from_keras_normalization_arguments():
    """axis, rms_scaling and renorm carry over and compute what Keras does."""
    assert layer_from_keras(
        L.LayerNormalization(rms_scaling=True)
    ) == jaxrnn.layers.LayerNormalization(rms_scaling=True)
    clipping = {"rmax": 2.0, "rmin": 0.5, "dmax": 1.0}
    cases = [
        L.BatchNormalization(axis=1),
        L.BatchNormalization(axis=2),
        L.BatchNormalization(
            renorm=True, renorm_clipping=clipping, renorm_momentum=0.9
        ),
        L.LayerNormalization(axis=[1, 2], rms_scaling=True),
    ]
    x = np.random.default_rng(0).standard_normal((B, T, D)).astype("float32")
    for keras_layer in cases:
        keras_layer.build(x.shape)
        randomize(keras_layer)
        layer = layer_from_keras(keras_layer)
        for training in (False, True):
            assert_parity(
                f"layer_from_keras {keras_layer.name}",
                layer(
                    from_keras(keras_layer), jnp.asarray(x), training=training
                ),
                keras_layer(x, training=training),
            )


def test_layer_from_keras_unsupported_cell():
    class Cell(L.Layer):
        state_size = 2

        def call(self, x, states):
            return x[..., :2], states

    with pytest.raises(TypeError, match="Cell is not supported"):
        layer_from_keras(L.RNN(Cell()))
