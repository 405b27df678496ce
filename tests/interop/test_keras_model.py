"""Whole ``.keras`` model archives both ways: jaxrnn writes what real Keras 3
loads (``keras.saving.load_model``) and computes the same with, jaxrnn
rebuilds what real Keras saved, and every archive that would need code or
that jaxrnn cannot mean exactly is refused."""

import json
import os
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import assert_parity, randomize
from subsets import default_subset, only

import jaxrnn
from jaxrnn import layers
from jaxrnn.interop import keras_model as keras_model_module
from jaxrnn.interop import load_keras_model, save_keras_model

L = keras.layers


def random_params(params, seed=0):
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        # Matrices scaled by their fan-in: wide layers would saturate.
        scale = 0.5 if leaf.ndim < 2 else 1.0 / np.sqrt(leaf.shape[-2])
        value = scale * rng.standard_normal(leaf.shape)
        if "variance" in jax.tree_util.keystr(path):
            value = np.abs(value) + 0.5
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, params)


def inputs_for(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "ids":  # right padding with 0, one row unpadded
        ids = rng.integers(1, 50, (3, 7))
        ids[0, 4:] = 0
        ids[1, 2:] = 0
        return ids
    if kind == "frames":
        return rng.standard_normal((2, 4, 6, 6, 2)).astype("float32")
    if kind == "padded":  # Masking(0.0): zero steps at the end and inside
        x = rng.standard_normal((3, 7, 5)).astype("float32")
        x[0, 4:] = 0.0
        x[1, 2] = 0.0
        return x
    return rng.standard_normal((3, 7, 5)).astype("float32")


# jaxrnn models, the seed documents' first (examples/keras_reference).
MODELS = {
    # keras_rnn_guide.py: Embedding -> LSTM -> Dense(softmax)
    "guide_embedding_lstm": (
        lambda: layers.Sequential(
            [
                layers.Embedding(1000, 64),
                layers.LSTM(128),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        (None, None),
        "ids",
    ),
    # keras_rnn_guide.py: Embedding -> GRU(seq) -> SimpleRNN -> Dense
    "guide_embedding_gru_simple_rnn": (
        lambda: layers.Sequential(
            [
                layers.Embedding(1000, 64),
                layers.GRU(256, return_sequences=True),
                layers.SimpleRNN(128),
                layers.Dense(10, activation="softmax"),
            ]
        ),
        (None, None),
        "ids",
    ),
    # rnn_cells_and_states.py: LSTM + BN + LSTM + FC
    "cells_lstm_bn_lstm_dense": (
        lambda: layers.Sequential(
            [
                jaxrnn.RNN(jaxrnn.LSTMCell(9), return_sequences=True),
                layers.BatchNormalization(),
                jaxrnn.RNN(jaxrnn.LSTMCell(9), return_sequences=True),
                layers.Dense(11),
            ]
        ),
        (None, None, 5),
        "x",
    ),
    # rnn_layer.py: stacked cells RNN([LSTMCell(32), LSTMCell(64)])
    "rnn_stacked_cells": (
        lambda: layers.Sequential(
            [jaxrnn.RNN([jaxrnn.LSTMCell(32), jaxrnn.LSTMCell(64)])]
        ),
        (None, None, 5),
        "x",
    ),
    # simple_rnn_time_distributed.py: SimpleRNN -> TimeDistributed(softmax)
    "simple_rnn_time_distributed": (
        lambda: layers.Sequential(
            [
                layers.SimpleRNN(128, return_sequences=True),
                layers.TimeDistributed(layers.Dense(39, activation="softmax")),
            ]
        ),
        (None, None, 5),
        "x",
    ),
    "bidirectional_stack": (
        lambda: layers.Sequential(
            [
                layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
                layers.Bidirectional(
                    layers.GRU(3, reset_after=False), merge_mode="sum"
                ),
                layers.Dense(2),
            ]
        ),
        (None, None, 5),
        "x",
    ),
    "conv_lstm2d": (
        lambda: layers.Sequential(
            [
                layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
                layers.BatchNormalization(),
                layers.ConvLSTM2D(2, (2, 2)),
            ]
        ),
        (None, None, 6, 6, 2),
        "frames",
    ),
    "masked_text_classifier": (
        lambda: layers.Sequential(
            [
                layers.Embedding(50, 8, mask_zero=True),
                layers.Bidirectional(layers.LSTM(6, return_sequences=True)),
                layers.GRU(5, go_backwards=True),
                layers.LayerNormalization(),
                layers.Dropout(0.3),
                layers.Dense(3, activation="softmax"),
            ]
        ),
        (None, None),
        "ids",
    ),
}


# ConvLSTM2D's Keras build takes a minute: its default-run round trip is
# test_keras_archive_rebuilds_in_jaxrnn's, which goes both ways too. Keras'
# load_model costs 2-9 s a model: the default run takes a text model with
# every mask-carrying layer, the guide's first model and TimeDistributed.
@default_subset(
    only(
        case=[
            "guide_embedding_lstm",
            "masked_text_classifier",
            "simple_rnn_time_distributed",
        ]
    )
)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.slow)
        if case == "conv_lstm2d"
        else case
        for case in sorted(MODELS)
    ],
)
def test_jaxrnn_archive_loads_in_keras_and_back(case, tmp_path):
    build, shape, kind = MODELS[case]
    model = build()
    params = random_params(model.init(jax.random.key(0), shape))
    path = str(tmp_path / f"{case}.keras")
    save_keras_model(
        params,
        model,
        path,
        input_shape=(None, None, 6, 6, 2) if kind == "frames" else None,
    )
    assert sorted(zipfile.ZipFile(path).namelist()) == [
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]

    keras_model = keras.saving.load_model(path)
    x = inputs_for(kind)
    ours = model(params, jnp.asarray(x))
    assert_parity(f"keras_model jaxrnn->keras {case}", ours, keras_model(x))
    assert keras_model.count_params() == model.param_count(shape)

    # And back: the archive Keras writes rebuilds the same jaxrnn model.
    again = str(tmp_path / f"{case}_by_keras.keras")
    keras_model.save(again)
    rebuilt, rebuilt_params = load_keras_model(again)
    assert rebuilt == model
    assert_parity(
        f"keras_model keras->jaxrnn {case}",
        rebuilt(rebuilt_params, jnp.asarray(x)),
        ours,
    )


def keras_models():
    """Models built in Keras itself, with non-default arguments."""
    return {
        "lstm_arguments": (
            keras.Sequential(
                [
                    keras.Input((None, 5)),
                    L.LSTM(
                        6,
                        activation="relu",
                        recurrent_activation="hard_sigmoid",
                        unit_forget_bias=False,
                        return_sequences=True,
                        go_backwards=True,
                    ),
                    L.SimpleRNN(4, use_bias=False, activation="softsign"),
                    L.Dense(3, use_bias=False, activation="selu"),
                ]
            ),
            "x",
        ),
        "gru_v1_backward_layer": (
            keras.Sequential(
                [
                    keras.Input((None, 5)),
                    L.Bidirectional(
                        L.GRU(4, reset_after=False, return_sequences=True),
                        backward_layer=L.GRU(
                            4,
                            return_sequences=True,
                            go_backwards=True,
                            activation="relu",
                        ),
                        merge_mode="concat",
                    ),
                    L.TimeDistributed(L.Dense(2, activation="tanh")),
                ]
            ),
            "x",
        ),
        "rnn_of_mixed_cells": (
            keras.Sequential(
                [
                    keras.Input((None, 5)),
                    L.RNN(
                        [L.GRUCell(4), L.SimpleRNNCell(3), L.LSTMCell(2)],
                        return_sequences=True,
                    ),
                    L.LayerNormalization(epsilon=1e-2, center=False),
                    L.BatchNormalization(
                        momentum=0.5, epsilon=1e-2, scale=False
                    ),
                ]
            ),
            "x",
        ),
        "masked_classifier": (
            keras.Sequential(
                [
                    keras.Input((None,)),
                    L.Embedding(50, 8, mask_zero=True),
                    L.LSTM(
                        6, return_sequences=True, zero_output_for_mask=True
                    ),
                    L.Bidirectional(L.SimpleRNN(4), merge_mode="ave"),
                    L.Dense(2, activation="softmax"),
                ]
            ),
            "ids",
        ),
        # Keras' classic CNN-LSTM text model, batch norm with renorm.
        "cnn_lstm_text": (
            keras.Sequential(
                [
                    keras.Input((None,)),
                    L.Embedding(50, 6),
                    L.Conv1D(
                        4,
                        3,
                        padding="causal",
                        dilation_rate=2,
                        activation="relu",
                    ),
                    L.MaxPooling1D(2),
                    L.BatchNormalization(
                        renorm=True,
                        renorm_clipping={
                            "rmax": 2.0,
                            "rmin": 0.5,
                            "dmax": 1.0,
                        },
                    ),
                    L.LSTM(5, return_sequences=True),
                    L.GlobalAveragePooling1D(),
                    L.Dense(2),
                ]
            ),
            "ids",
        ),
        "masking_pooling": (
            keras.Sequential(
                [
                    keras.Input((None, 5)),
                    L.Masking(0.0),
                    L.GRU(4, return_sequences=True),
                    L.GlobalAveragePooling1D(),
                    L.Dense(2),
                ]
            ),
            "padded",
        ),
        "normalization_axes": (
            keras.Sequential(
                [
                    keras.Input((7, 5)),
                    L.LSTM(4, return_sequences=True),
                    L.BatchNormalization(axis=1),
                    L.LayerNormalization(axis=-1, rms_scaling=True),
                ]
            ),
            "x",
        ),
        "conv_lstm2d": (
            keras.Sequential(
                [
                    keras.Input((None, 6, 6, 2)),
                    L.ConvLSTM2D(
                        3,
                        (3, 3),
                        padding="same",
                        strides=1,
                        return_sequences=True,
                        go_backwards=True,
                    ),
                    L.ConvLSTM2D(2, 2, dilation_rate=2),
                ]
            ),
            "frames",
        ),
    }


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@default_subset(
    only(
        case=[
            "lstm_arguments",
            "masked_classifier",
            "masking_pooling",
            "normalization_axes",
            "conv_lstm2d",
        ]
    )
)
@pytest.mark.parametrize(
    "case",
    [
        "lstm_arguments",
        "gru_v1_backward_layer",
        "rnn_of_mixed_cells",
        "masked_classifier",
        "cnn_lstm_text",
        "masking_pooling",
        "normalization_axes",
        "conv_lstm2d",
    ],
)
def test_keras_archive_rebuilds_in_jaxrnn(case, tmp_path):
    keras_model, kind = keras_models()[case]
    randomize(keras_model)
    path = str(tmp_path / f"{case}.keras")
    keras_model.save(path)
    model, params = load_keras_model(path)
    x = inputs_for(kind)
    assert_parity(
        f"keras_model keras->jaxrnn {case}",
        model(params, jnp.asarray(x)),
        keras_model(x),
    )
    # And back into Keras from jaxrnn's own archive.
    again = str(tmp_path / f"{case}_by_jaxrnn.keras")
    save_keras_model(
        params, model, again, input_shape=keras_model.inputs[0].shape
    )
    assert_parity(
        f"keras_model jaxrnn->keras {case}",
        keras.saving.load_model(again)(x),
        keras_model(x),
    )


def test_loader_never_imports_keras(tmp_path):
    """Rebuilding a model needs no Keras, so none of its code can run."""
    model = layers.Sequential([layers.LSTM(3), layers.Dense(2)])
    params = model.init(jax.random.key(0), (None, None, 4))
    path = str(tmp_path / "m.keras")
    save_keras_model(params, model, path)
    script = (
        "import sys; sys.modules['keras'] = None\n"
        "from jaxrnn.interop import load_keras_model\n"
        f"model, params = load_keras_model({path!r})\n"
        "assert 'keras' not in [m.split('.')[0] for m in sys.modules "
        "if sys.modules[m] is not None]\n"
        "print(type(model.layers[0]).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "LSTM"


# Refusals.
def saved(tmp_path, keras_model, name="m.keras"):
    path = str(tmp_path / name)
    keras_model.save(path)
    return path


def rewrite_config(path, edit):
    """Rewrites an archive's config.json through `edit(config)`."""
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    edited = edit(config)
    members["config.json"] = (
        edited if isinstance(edited, bytes) else json.dumps(config).encode()
    )
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def small_keras_model():
    return keras.Sequential([keras.Input((None, 4)), L.LSTM(3), L.Dense(2)])


def test_lambda_layer_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    keras_model = keras.Sequential(
        [keras.Input((None, 4)), L.LSTM(3), L.Lambda(lambda t: t * 2)]
    )
    path = saved(tmp_path, keras_model)
    with pytest.raises(ValueError, match=r"layers\[2\] \(Lambda\).*never run"):
        load_keras_model(path)
    assert not marker.exists()


def test_custom_layer_is_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="evil")
    class Doubler(L.Layer):
        def call(self, x):
            return 2 * x

    keras_model = keras.Sequential(
        [keras.Input((None, 4)), L.LSTM(3), Doubler()]
    )
    path = saved(tmp_path, keras_model)
    with pytest.raises(
        ValueError,
        match=r"custom object.*registered_name "
        r"'evil>Doubler'",
    ):
        load_keras_model(path)


def test_custom_activation_is_refused(tmp_path):
    path = saved(tmp_path, small_keras_model())

    def edit(config):
        dense = config["config"]["layers"][2]["config"]
        dense["activation"] = {
            "module": "builtins",
            "class_name": "function",
            "config": "my_activation",
            "registered_name": "function",
        }

    rewrite_config(path, edit)
    with pytest.raises(
        ValueError,
        match=r"layers\[2\] \(Dense\): activation "
        r".*not an activation jaxrnn knows",
    ):
        load_keras_model(path)


def test_custom_initializer_is_refused(tmp_path):
    path = saved(tmp_path, small_keras_model())

    def edit(config):
        config["config"]["layers"][1]["config"]["kernel_initializer"] = {
            "module": "my_package.inits",
            "class_name": "Evil",
            "config": {},
            "registered_name": "Custom>Evil",
        }

    rewrite_config(path, edit)
    with pytest.raises(ValueError, match="custom object"):
        load_keras_model(path)


def test_functional_model_is_refused(tmp_path):
    inputs = keras.Input((None, 4))
    keras_model = keras.Model(inputs, L.LSTM(3)(inputs))
    path = saved(tmp_path, keras_model)
    with pytest.raises(
        ValueError, match="holds a Keras Functional; only Sequential"
    ):
        load_keras_model(path)


def test_layer_jaxrnn_lacks_is_refused(tmp_path):
    keras_model = keras.Sequential(
        [keras.Input((None, 4)), L.LSTM(3), L.Flatten()]
    )
    path = saved(tmp_path, keras_model)
    with pytest.raises(
        ValueError,
        match=r"jaxrnn has no Keras Flatten; the "
        r"layers it rebuilds are \[",
    ):
        load_keras_model(path)


def test_unknown_argument_is_refused_not_dropped(tmp_path):
    path = saved(tmp_path, small_keras_model())

    def edit(config):
        config["config"]["layers"][2]["config"]["lora_rank"] = 4

    rewrite_config(path, edit)
    with pytest.raises(
        ValueError,
        match=r"\['lora_rank=4'\] have no jaxrnn counterpart",
    ):
        load_keras_model(path)


def test_use_cudnn_is_kept_both_ways(tmp_path):
    path = saved(tmp_path, small_keras_model())

    def edit(config):
        config["config"]["layers"][1]["config"]["use_cudnn"] = False

    rewrite_config(path, edit)
    model, params = load_keras_model(path)
    assert model.layers[0].use_cudnn is False
    written = str(tmp_path / "written.keras")
    save_keras_model(params, model, written)
    assert keras.saving.load_model(written).layers[0].use_cudnn is False
    assert load_keras_model(written)[0].layers[0].use_cudnn is False


def test_training_only_arguments_are_ignored(tmp_path):
    keras_model = keras.Sequential(
        [
            keras.Input((None, 4)),
            L.LSTM(
                3,
                kernel_regularizer="l2",
                recurrent_constraint="non_neg",
                seed=7,
                trainable=False,
            ),
            L.Dense(
                2,
                kernel_initializer=keras.initializers.RandomNormal(stddev=3.0),
            ),
        ]
    )
    randomize(keras_model)
    path = saved(tmp_path, keras_model)
    model, params = load_keras_model(path)
    x = inputs_for("x")[..., :4]
    assert_parity(
        "keras_model keras->jaxrnn training-only arguments",
        model(params, jnp.asarray(x)),
        keras_model(x),
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda c: b'{"module": "keras", "module": "evil"}',
            "repeats the keys",
        ),
        (lambda c: b"{not json", "not valid JSON"),
        (
            lambda c: b"[" * 100000 + b"]" * 100000,
            "nested too deeply|not valid",
        ),
        (lambda c: b"[]", "must be a JSON object"),
        (
            lambda c: json.dumps(
                {
                    **c,
                    "class_name": "Sequential",
                    "config": {**c["config"], "layers": {}},
                }
            ).encode(),
            "no list of layers",
        ),
        (
            lambda c: json.dumps(
                {
                    **c,
                    "config": {
                        **c["config"],
                        "layers": [
                            {
                                "module": "keras.layers",
                                "class_name": "InputLayer",
                                "config": {"batch_shape": [None, "x", 4]},
                            }
                        ]
                        + c["config"]["layers"][1:],
                    },
                }
            ).encode(),
            "batch_shape must be a list of sizes",
        ),
    ],
)
def test_damaged_config_is_refused(tmp_path, damage, message):
    path = rewrite_config(saved(tmp_path, small_keras_model()), damage)
    with pytest.raises(ValueError, match=message):
        load_keras_model(path)


def test_config_that_does_not_fit_the_weights_is_refused(tmp_path):
    path = saved(tmp_path, small_keras_model())

    def edit(config):
        config["config"]["layers"][1]["config"]["units"] = 5

    rewrite_config(path, edit)
    with pytest.raises(
        ValueError,
        match=r"layers/lstm/cell/vars/0 .*must "
        r"have shape \(4, 20\), got \(4, 12\)",
    ):
        load_keras_model(path)


def test_archive_limits(tmp_path, monkeypatch):
    path = saved(tmp_path, small_keras_model())
    monkeypatch.setattr(keras_model_module, "_MAX_CONFIG_BYTES", 100)
    with pytest.raises(
        ValueError, match="config.json declares .* more than max_bytes=100"
    ):
        load_keras_model(path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="model.weights.h5 declares"):
        load_keras_model(path, max_bytes=10)
    with pytest.raises(ValueError, match=r"must name a Keras 3 \.keras"):
        load_keras_model(str(tmp_path / "m.weights.h5"))
    with pytest.raises(FileNotFoundError):
        load_keras_model(str(tmp_path / "missing.keras"))
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ValueError, match="holds no config.json"):
        load_keras_model(str(tmp_path / "empty.keras"))


def test_writer_refusals(tmp_path):
    model = layers.Sequential([layers.LSTM(3, time_major=True)])
    params = model.init(jax.random.key(0), (None, None, 4))
    with pytest.raises(
        ValueError, match="time_major=True has no Keras counterpart"
    ):
        save_keras_model(params, model, str(tmp_path / "m.keras"))
    with pytest.raises(ValueError, match=r"must end in '\.keras'"):
        save_keras_model(params, model, str(tmp_path / "m.h5"))
    conv = layers.ConvLSTM2D(2, 3)
    with pytest.raises(ValueError, match="fixed size, e.g. input_shape="):
        save_keras_model(
            conv.init(jax.random.key(0), (None, None, 5, 5, 1)),
            conv,
            str(tmp_path / "c.keras"),
        )
    min_gru = jaxrnn.RNN(jaxrnn.MinGRUCell(4))
    with pytest.raises(TypeError, match="MinGRUCell has no Keras counterpart"):
        save_keras_model(
            min_gru.init(jax.random.key(0), (None, None, 3)),
            min_gru,
            str(tmp_path / "g.keras"),
        )
    lstm = layers.LSTM(3)
    with pytest.raises(ValueError, match=r"must have shape"):
        save_keras_model(
            lstm.init(jax.random.key(0), (None, None, 4)),
            layers.LSTM(5),
            str(tmp_path / "l.keras"),
        )


def test_single_layer_saves_as_a_sequential(tmp_path):
    layer = layers.Bidirectional(layers.GRU(3, return_sequences=True))
    params = random_params(layer.init(jax.random.key(0), (None, None, 5)))
    path = str(tmp_path / "bi.keras")
    save_keras_model(params, layer, path)
    model, loaded = load_keras_model(path)
    assert model.layers == (layer,)
    x = jnp.asarray(inputs_for("x"))
    assert_parity(
        "keras_model single layer", model(loaded, x), layer(params, x)
    )


def test_failed_write_leaves_the_previous_archive(tmp_path, monkeypatch):
    model = layers.Sequential([layers.LSTM(3)])
    params = model.init(jax.random.key(0), (None, None, 4))
    path = tmp_path / "m.keras"
    save_keras_model(params, model, str(path))
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(keras_model_module, "_write", fail)
    with pytest.raises(OSError, match="previous file there is unchanged"):
        save_keras_model(params, model, str(path))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_stateful_model_round_trip(tmp_path):
    """Keras' char-RNN pattern: chunk after chunk, Keras' stateful model
    loaded from jaxrnn's archive matches the states jaxrnn threads."""
    model = layers.Sequential(
        [
            layers.Embedding(20, 4),
            layers.LSTM(5, return_sequences=True, stateful=True),
            layers.Dense(3),
        ]
    )
    params = random_params(model.init(jax.random.key(0), (2, None)))
    path = str(tmp_path / "stateful.keras")
    with pytest.raises(ValueError, match="needs the batch size"):
        save_keras_model(params, model, path)
    save_keras_model(params, model, path, input_shape=(2, None))
    keras_model = keras.saving.load_model(path)
    ids = np.random.default_rng(0).integers(1, 20, (2, 8))
    states = None
    for start in (0, 4):
        chunk = ids[:, start : start + 4]
        ours, states = model(params, jnp.asarray(chunk), states=states)
        assert_parity("keras_model stateful chunks", ours, keras_model(chunk))
    keras_model.save(str(tmp_path / "again.keras"))
    rebuilt, _ = load_keras_model(str(tmp_path / "again.keras"))
    assert rebuilt == model


def rewrite_weights(path, edit):
    """Rewrites an archive's model.weights.h5 through `edit(h5py.File)`."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    weights = os.path.join(os.path.dirname(path), "w.h5")
    with open(weights, "wb") as f:
        f.write(members["model.weights.h5"])
    with h5py.File(weights, "a") as f:
        edit(f)
    with open(weights, "rb") as f:
        members["model.weights.h5"] = f.read()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _external_link(f):
    import h5py

    f["layers/lstm/cell/vars/extra"] = h5py.ExternalLink("/etc/passwd", "/")


def _huge_declared_shape(f):
    del f["layers/dense/vars/0"]
    f.create_dataset(
        "layers/dense/vars/0", shape=(32768, 32768), dtype="float32"
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (_external_link, "external link"),
        (
            _huge_declared_shape,
            r"must have shape \(3, 2\), got \(32768, 32768\)",
        ),
    ],
)
def test_hostile_weights_inside_an_archive_are_refused(
    tmp_path, edit, message
):
    """The archive's weights get every check load_keras_weights makes."""
    path = rewrite_weights(saved(tmp_path, small_keras_model()), edit)
    with pytest.raises(ValueError, match=message):
        load_keras_model(path)


def test_truncated_archive_is_refused(tmp_path):
    path = saved(tmp_path, small_keras_model())
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(
        ValueError, match="not a zip archive, or a damaged one"
    ):
        load_keras_model(path)


_KILLED_SAVE = """
import sys, time
import h5py, jax
from jaxrnn.interop import save_keras_model
from jaxrnn.layers import Dense, LSTM, Sequential
model = Sequential([LSTM(3), Dense(2)])
params = model.init(jax.random.key(1), (None, None, 4))
create = h5py.Group.create_dataset
def paused(self, *args, **kwargs):  # stop for good after the first array
    print("midway", flush=True)
    time.sleep(60)
h5py.Group.create_dataset = paused
save_keras_model(params, model, sys.argv[1])
"""


def test_killed_save_keeps_the_old_archive(tmp_path):
    import signal

    model = layers.Sequential([layers.LSTM(3), layers.Dense(2)])
    params = model.init(jax.random.key(0), (None, None, 4))
    path = tmp_path / "m.keras"
    save_keras_model(params, model, str(path))
    before = path.read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SAVE, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert process.stdout.readline().strip() == "midway"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert path.read_bytes() == before
    _, loaded = load_keras_model(str(path))
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
