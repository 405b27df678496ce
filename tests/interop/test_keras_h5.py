"""Keras weight files without Keras: files Keras writes load into jaxrnn,
files jaxrnn writes load into Keras, ``.keras`` archives, and every rejected
input."""

import subprocess
import sys
import zipfile

import h5py
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
    assert_parity,
    keras_model,
    perturb,
    randomize,
)

import jaxrnn
from jaxrnn.interop import (
    from_keras,
    layer_from_keras,
    load_keras_weights,
    save_keras_weights,
)
from jaxrnn.interop.keras_h5 import keras_snake_case
from jaxrnn.layers import Dense, Sequential


def zeros_like_init(model, input_shape):
    """Params of `model`'s layout without running its initializers."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), input_shape))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def assert_same_params(ours, theirs):
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("case", sorted(KERAS_MODELS))
def test_keras_weights_file_loads_into_jaxrnn(case, tmp_path):
    model, _ = keras_model(case)
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    assert_same_params(
        load_keras_weights(path, layer_from_keras(model)), from_keras(model)
    )


@pytest.mark.parametrize("case", sorted(KERAS_MODELS))
def test_jaxrnn_weights_file_loads_into_keras(case, tmp_path):
    model, _ = keras_model(case)
    params = perturb(from_keras(model))
    path = tmp_path / "model.weights.h5"
    save_keras_weights(params, layer_from_keras(model), path)
    model.load_weights(path)
    assert_same_params(from_keras(model), params)


@pytest.mark.parametrize("case", ["masked_everything", "stacked_lstm_cells"])
def test_keras_archive_loads_into_jaxrnn(case, tmp_path):
    model, _ = keras_model(case)
    path = tmp_path / "model.keras"
    model.save(path)
    assert_same_params(
        load_keras_weights(path, layer_from_keras(model)), from_keras(model)
    )


def test_outputs_agree_through_files_both_ways(tmp_path, request):
    model, x = keras_model("masked_everything")
    ours = layer_from_keras(model)
    apply = jax.jit(lambda params, x: ours(params, x))
    model.save_weights(tmp_path / "keras.weights.h5")
    params = load_keras_weights(tmp_path / "keras.weights.h5", ours)
    assert_parity(
        request.node.name,
        apply(params, jnp.asarray(x)),
        model.predict(x, verbose=0),
    )
    params = perturb(params)
    save_keras_weights(params, ours, tmp_path / "jaxrnn.weights.h5")
    model.load_weights(tmp_path / "jaxrnn.weights.h5")
    assert_parity(
        request.node.name,
        apply(params, jnp.asarray(x)),
        model.predict(x, verbose=0),
    )


def test_compiled_model_archive_skips_optimizer_state(tmp_path):
    model, _ = keras_model("lstm_batch_norm_lstm_dense")
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "model.keras")
    with (
        zipfile.ZipFile(tmp_path / "model.keras") as archive,
        h5py.File(archive.open("model.weights.h5"), "r") as f,
    ):
        assert "optimizer" in f
    assert_same_params(
        load_keras_weights(tmp_path / "model.keras", layer_from_keras(model)),
        from_keras(model),
    )


def test_layout_matches_keras(tmp_path):
    model, _ = keras_model("masked_everything")
    params = from_keras(model)
    save_keras_weights(
        params, layer_from_keras(model), tmp_path / "j.weights.h5"
    )
    model.save_weights(tmp_path / "k.weights.h5")

    def tree(path):
        found = {}
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, obj: found.__setitem__(
                    name, obj.shape if isinstance(obj, h5py.Dataset) else None
                )
            )
        return found

    ours, theirs = (
        tree(tmp_path / "j.weights.h5"),
        tree(tmp_path / "k.weights.h5"),
    )
    assert ours == theirs
    assert "layers/rnn/cell/cells/simple_rnn_cell/vars/1" in ours
    assert "layers/bidirectional/backward_layer/cell/vars/2" in ours


def test_single_layer_files(tmp_path):
    keras_layer = L.LSTM(4, return_sequences=True)
    model = keras.Sequential([keras.Input((T, D)), keras_layer])
    randomize(model)
    ours = layer_from_keras(keras_layer)
    model.save_weights(tmp_path / "k.weights.h5")
    assert_same_params(
        load_keras_weights(tmp_path / "k.weights.h5", ours),
        from_keras(keras_layer),
    )
    params = perturb(from_keras(keras_layer))
    save_keras_weights(params, ours, tmp_path / "j.weights.h5")
    model.load_weights(tmp_path / "j.weights.h5")
    assert_same_params(from_keras(keras_layer), params)


def test_bare_layer_file(tmp_path):
    from keras.src.saving import saving_lib

    keras_layer = L.Bidirectional(L.GRU(3))
    keras_layer.build((B, T, D))
    randomize(keras_layer)
    saving_lib.save_weights_only(keras_layer, tmp_path / "bi.weights.h5")
    assert_same_params(
        load_keras_weights(
            tmp_path / "bi.weights.h5", layer_from_keras(keras_layer)
        ),
        from_keras(keras_layer),
    )


def test_functional_model_file_loads_into_sequential(tmp_path):
    inputs = keras.Input((T, D))
    outputs = L.GRU(3)(
        L.TimeDistributed(L.Dense(4))(L.LSTM(4, return_sequences=True)(inputs))
    )
    model = keras.Model(inputs, outputs)
    randomize(model)
    model.save_weights(tmp_path / "f.weights.h5")
    ours = Sequential([layer_from_keras(k) for k in model.layers[1:]])
    assert_same_params(
        load_keras_weights(tmp_path / "f.weights.h5", ours),
        [from_keras(k) for k in model.layers[1:]],
    )


def test_nested_sequential_and_subclassed_layers(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.Sequential([L.Dense(3), L.Dense(4)]),
            L.Dense(2),
        ]
    )
    randomize(model)
    model.save_weights(tmp_path / "k.weights.h5")

    class MyDense(Dense):
        pass

    ours = Sequential([Sequential([MyDense(3), Dense(4)]), MyDense(2)])
    assert_same_params(
        load_keras_weights(tmp_path / "k.weights.h5", ours), from_keras(model)
    )
    params = perturb(from_keras(model))
    save_keras_weights(params, ours, tmp_path / "j.weights.h5")
    model.load_weights(tmp_path / "j.weights.h5")
    assert_same_params(from_keras(model), params)


def test_bfloat16_arrays_round_trip(tmp_path):
    model = keras.Sequential([keras.Input((D,)), L.Dense(3, dtype="bfloat16")])
    randomize(model)
    model.save_weights(tmp_path / "k.weights.h5")
    ours = Dense(3, param_dtype="bfloat16")
    params = load_keras_weights(tmp_path / "k.weights.h5", ours)
    assert params["kernel"].dtype == jnp.bfloat16
    assert_same_params(params, from_keras(model.layers[0]))
    params = perturb(params)
    save_keras_weights(params, ours, tmp_path / "j.weights.h5")
    assert_same_params(
        load_keras_weights(tmp_path / "j.weights.h5", ours), params
    )
    model.load_weights(tmp_path / "j.weights.h5")
    assert_same_params(from_keras(model.layers[0]), params)


@pytest.mark.parametrize(
    "name",
    [
        "SimpleRNN",
        "LSTMCell",
        "GRU",
        "StackedRNNCells",
        "BatchNormalization",
        "TimeDistributed",
        "LayerNormalization",
        "Bidirectional",
    ],
)
def test_snake_case_matches_keras(name):
    from keras.src.utils.naming import to_snake_case

    assert keras_snake_case(name) == to_snake_case(name)


def test_importing_jaxrnn_does_not_import_h5py():
    code = (
        "import sys, jaxrnn, jaxrnn.interop; "
        "assert 'h5py' not in sys.modules, 'h5py imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Rejected inputs.
def _saved(tmp_path, layers, shape=(T, D)):
    model = keras.Sequential([keras.Input(shape), *layers])
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    return path


def test_load_missing_group_says_what_the_file_has(tmp_path):
    path = _saved(tmp_path, [L.LSTM(4), L.Dense(2)])
    model = Sequential([jaxrnn.GRU(4), Dense(2)])
    with pytest.raises(
        ValueError,
        match=r"the GRUCell at params\[0\] needs "
        r"\('kernel', 'recurrent_kernel', 'bias'\), but there is "
        r"no group 'layers/gru/cell/vars'; under 'layers' the "
        r"file has \['dense', 'lstm'\]",
    ):
        load_keras_weights(path, model)


def test_load_wrong_array_count(tmp_path):
    path = _saved(tmp_path, [L.BatchNormalization(center=False)], (D,))
    with pytest.raises(
        ValueError,
        match=r"layers/batch_normalization/vars holds "
        r"3 arrays .* expects 4: gamma, beta, moving_mean",
    ):
        load_keras_weights(
            path, Sequential([jaxrnn.layers.BatchNormalization()])
        )


def test_load_wrong_shape_names_h5_path_and_params_entry(tmp_path):
    path = _saved(tmp_path, [L.LSTM(8), L.Dense(2)])
    with pytest.raises(
        ValueError,
        match=r"layers/lstm/cell/vars/0 "
        r"\(params\[0\]\['kernel'\], the LSTMCell's kernel\) must "
        r"have shape \(5, 16\), got \(5, 32\)",
    ):
        load_keras_weights(path, Sequential([jaxrnn.LSTM(4), Dense(2)]))


def test_load_checks_input_size_when_given(tmp_path):
    path = _saved(tmp_path, [L.SimpleRNN(4)])
    model = Sequential([jaxrnn.SimpleRNN(4)])
    assert load_keras_weights(path, model, (None, None, D))[0][
        "kernel"
    ].shape == (D, 4)
    with pytest.raises(
        ValueError,
        match=r"layers/simple_rnn/cell/vars/0 .* must "
        r"have shape \(7, 4\), got \(5, 4\)",
    ):
        load_keras_weights(path, model, input_shape=(None, None, 7))


def test_load_rejects_arrays_without_a_place(tmp_path):
    path = _saved(tmp_path, [L.LSTM(4), L.Dense(3), L.Dense(2)])
    with pytest.raises(
        ValueError,
        match=r"no place for: "
        r"\['layers/dense_1/vars/0', 'layers/dense_1/vars/1'\]",
    ):
        load_keras_weights(path, Sequential([jaxrnn.LSTM(4), Dense(3)]))


def test_load_rejects_other_files(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"\.weights\.h5 file or a \.keras "
        "archive, got",
    ):
        load_keras_weights(tmp_path / "model.npz", Dense(2))
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="holds no model.weights.h5"):
        load_keras_weights(tmp_path / "empty.keras", Dense(2))
    with h5py.File(tmp_path / "legacy.h5", "w") as f:
        f.create_group("model_weights")
    with pytest.raises(ValueError, match="legacy Keras 2"):
        load_keras_weights(tmp_path / "legacy.h5", Dense(2))


def test_save_rejects_wrong_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"must end in '\.weights\.h5'"):
        save_keras_weights(
            {"kernel": jnp.zeros((2, 2))},
            Dense(2, use_bias=False),
            tmp_path / "model.h5",
        )


def test_save_rejects_params_of_another_structure(tmp_path):
    model = Sequential([jaxrnn.LSTM(4), Dense(2)])
    params = zeros_like_init(model, (None, T, D))
    path = tmp_path / "model.weights.h5"
    with pytest.raises(
        ValueError,
        match=r"params must be a list of 2 entries, "
        "got list of length 1",
    ):
        save_keras_weights(params[:1], model, path)
    del params[1]["bias"]
    with pytest.raises(
        ValueError,
        match=r"params\[1\] must be a dict with keys "
        r"\['bias', 'kernel'\], got \['kernel'\]",
    ):
        save_keras_weights(params, model, path)
    params[1]["bias"] = [0.0, 0.0]
    with pytest.raises(
        TypeError, match=r"params\[1\]\['bias'\] must be an array"
    ):
        save_keras_weights(params, model, path)


def test_save_wrong_shape_names_params_entry_and_h5_path(tmp_path):
    model = Sequential([jaxrnn.LSTM(4), Dense(2)])
    params = zeros_like_init(model, (None, T, D))
    params[0]["recurrent_kernel"] = params[0]["recurrent_kernel"][:3]
    with pytest.raises(
        ValueError,
        match=r"layers/lstm/cell/vars/1 "
        r"\(params\[0\]\['recurrent_kernel'\], the LSTMCell's "
        r"recurrent_kernel\) must have shape \(4, 16\), got \(3, 16\)",
    ):
        save_keras_weights(params, model, tmp_path / "model.weights.h5")


def test_layers_without_keras_counterpart(tmp_path):
    class Cell(jaxrnn.SimpleRNNCell):
        pass

    class MyCell:
        output_size = 2

        def init(self, key, input_dim):
            return {}

        def initial_carry(self, batch_shape=(), dtype=None):
            return jnp.zeros((*batch_shape, 2))

        def __call__(self, params, carry, x, **kwargs):
            return carry, carry

    with pytest.raises(
        TypeError, match="MyCell has no Keras weight-file layout"
    ):
        save_keras_weights({}, jaxrnn.RNN(MyCell()), tmp_path / "x.weights.h5")
    # A subclass of a built-in cell keeps the built-in's layout.
    layer = jaxrnn.RNN(Cell(2))
    save_keras_weights(
        zeros_like_init(layer, (None, T, D)),
        layer,
        tmp_path / "sub.weights.h5",
    )


def test_missing_h5py_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="needs h5py"):
        load_keras_weights(tmp_path / "model.weights.h5", Dense(2))
