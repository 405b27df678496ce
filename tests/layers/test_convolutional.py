"""Conv1D: Keras parity across arguments, Keras' own cases, the CNN-LSTM
text model, masks, gradients and errors."""

import warnings

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from jax.test_util import check_grads
from keras_helpers import assert_parity, randomize_keras_weights

from jaxrnn.layers import (
    LSTM,
    Conv1D,
    Dense,
    Embedding,
    MaxPooling1D,
    Sequential,
    summary,
)


def _params_from_keras(layer):
    """A Keras layer's variables by their short names (kernel, bias, ...)."""
    return dict(zip((v.name for v in layer.weights), layer.get_weights()))


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _numpy_conv1d(x, kernel, bias, *, stride, padding, dilation, groups):
    """A direct float64 Conv1D on (B, T, C): pad, then sum the taps."""
    x, kernel = x.astype(np.float64), kernel.astype(np.float64)
    size, channels_in, filters = kernel.shape
    span = dilation * (size - 1) + 1
    steps = x.shape[1]
    if padding == "valid":
        left = right = 0
    elif padding == "causal":
        left, right = span - 1, 0
    else:  # 'same': T' = ceil(T / stride), the extra step at the end
        total = max((-(-steps // stride) - 1) * stride + span - steps, 0)
        left, right = total // 2, total - total // 2
    x = np.pad(x, ((0, 0), (left, right), (0, 0)))
    out = np.zeros((x.shape[0], (x.shape[1] - span) // stride + 1, filters))
    per_group = filters // groups
    for t in range(out.shape[1]):
        for j in range(size):
            tap = x[:, t * stride + j * dilation]
            for g in range(groups):
                out[:, t, g * per_group : (g + 1) * per_group] += (
                    tap[:, g * channels_in : (g + 1) * channels_in]
                    @ kernel[j, :, g * per_group : (g + 1) * per_group]
                )
    return out + bias


PARITY_CASES = [
    dict(filters=5, kernel_size=3),
    dict(filters=4, kernel_size=1, use_bias=False),
    dict(filters=6, kernel_size=3, padding="same", activation="relu"),
    dict(filters=6, kernel_size=4, padding="same", strides=3),
    dict(filters=4, kernel_size=3, padding="causal", activation="tanh"),
    dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2),
    dict(filters=4, kernel_size=2, padding="causal", strides=2),
    dict(filters=6, kernel_size=3, dilation_rate=3, groups=2),
    dict(filters=6, kernel_size=2, padding="same", dilation_rate=2, groups=3),
    dict(filters=8, kernel_size=3, strides=2, groups=2, use_bias=False),
    dict(
        filters=6, kernel_size=3, padding="SAME", data_format="channels_first"
    ),
    dict(
        filters=4,
        kernel_size=(3,),
        strides=(2,),
        padding="causal",
        data_format="channels_first",
        groups=2,
    ),
    dict(
        filters=6,
        kernel_size=2,
        dilation_rate=(2,),
        data_format="channels_first",
        groups=3,
        activation="sigmoid",
    ),
]


@pytest.mark.parametrize("kwargs", PARITY_CASES, ids=str)
def test_conv1d_matches_keras(kwargs, request):
    channels_first = kwargs.get("data_format") == "channels_first"
    x = _inputs((2, 6, 9) if channels_first else (2, 9, 6))
    theirs = keras.layers.Conv1D(**kwargs)
    theirs(x)
    randomize_keras_weights(theirs)
    ours = Conv1D(**kwargs)
    params = _params_from_keras(theirs)
    assert jax.tree.map(np.shape, params) == jax.tree.map(
        np.shape, ours.init(jax.random.key(0), x.shape)
    )
    assert_parity(request.node.name, ours(params, jnp.asarray(x)), theirs(x))
    assert ours.param_count(x.shape) == theirs.count_params()
    for shape in (
        x.shape,
        (None, *x.shape[1:]),
        (None, 6, None) if channels_first else (None, None, 6),
    ):
        assert ours.output_shape(shape) == tuple(
            theirs.compute_output_shape(shape)
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(
            filters=5,
            kernel_size=2,
            strides=1,
            padding="valid",
            data_format="channels_last",
            dilation_rate=1,
            groups=1,
        ),
        dict(
            filters=6,
            kernel_size=2,
            strides=1,
            padding="same",
            data_format="channels_last",
            dilation_rate=(2,),
            groups=2,
        ),
        dict(
            filters=6,
            kernel_size=2,
            strides=1,
            padding="causal",
            data_format="channels_last",
            dilation_rate=(2,),
            groups=2,
        ),
        dict(
            filters=6,
            kernel_size=(2,),
            strides=(2,),
            padding="valid",
            data_format="channels_last",
            dilation_rate=1,
            groups=2,
        ),
        dict(
            filters=6,
            kernel_size=(2,),
            strides=(2,),
            padding="valid",
            data_format="channels_first",
            dilation_rate=1,
            groups=2,
        ),
    ],
)
def test_conv1d_keras_correctness_cases(kwargs, request):
    """keras/src/layers/convolutional/conv_test.py::ConvCorrectnessTest::test_conv1d"""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 4)).astype("float32")
    layer = Conv1D(**kwargs)
    shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), x.shape))
    params = {
        k: rng.standard_normal(v.shape).astype("float32")
        for k, v in shapes.items()
    }
    channels_first = kwargs["data_format"] == "channels_first"
    as_last = x.swapaxes(1, 2) if channels_first else x
    want = _numpy_conv1d(
        as_last,
        params["kernel"],
        params["bias"],
        stride=layer.strides[0],
        padding=layer.padding,
        dilation=layer.dilation_rate[0],
        groups=layer.groups,
    )
    got = np.asarray(layer(params, jnp.asarray(x)))
    assert_parity(
        request.node.name,
        got.swapaxes(1, 2) if channels_first else got,
        want.astype("float32"),
    )


@pytest.mark.parametrize(
    "kwargs,input_shape,output_shape",
    [
        (dict(filters=5, kernel_size=2), (3, 5, 4), (3, 4, 5)),
        (
            dict(
                filters=6,
                kernel_size=2,
                padding="same",
                dilation_rate=(2,),
                groups=2,
            ),
            (3, 4, 4),
            (3, 4, 6),
        ),
        (
            dict(
                filters=6,
                kernel_size=2,
                padding="causal",
                dilation_rate=(2,),
                groups=2,
            ),
            (3, 4, 4),
            (3, 4, 6),
        ),
        (
            dict(filters=6, kernel_size=2, strides=(2,), groups=2),
            (3, 5, 4),
            (3, 2, 6),
        ),
    ],
)
def test_conv1d_keras_basic_shapes(kwargs, input_shape, output_shape):
    """keras/src/layers/convolutional/conv_test.py::ConvBasicTest::test_conv1d_basic"""
    layer = Conv1D(**kwargs)
    params = layer.init(jax.random.key(0), input_shape)
    assert len(params) == 2  # Keras: expected_num_trainable_weights=2
    assert layer.output_shape(input_shape) == output_shape
    assert layer(params, jnp.ones(input_shape)).shape == output_shape


def test_conv1d_unbatched_is_one_row_of_a_batch(key):
    layer = Conv1D(4, 3, padding="causal", dilation_rate=2, groups=2)
    x = jnp.asarray(_inputs((3, 7, 6)))
    params = layer.init(key, x.shape)
    np.testing.assert_allclose(
        layer(params, x[1]), layer(params, x)[1], atol=1e-6
    )
    assert layer.output_shape((7, 6)) == (7, 4)


def test_conv1d_init_draws_glorot_with_keras_fans(key):
    layer = Conv1D(32, 5, groups=2)
    kernel = layer.init(key, (None, None, 16))["kernel"]
    assert kernel.shape == (5, 8, 32)
    limit = np.sqrt(6.0 / (5 * 8 + 5 * 32))  # fans count the window
    assert float(jnp.abs(kernel).max()) <= limit
    assert float(jnp.abs(kernel).max()) > 0.95 * limit


def test_equal_spellings_make_equal_layers():
    assert Conv1D(4, 3, padding="SAME", data_format=None) == Conv1D(
        4, (3,), padding="same", data_format="channels_last"
    )
    assert hash(Conv1D(4, 3, strides=2)) == hash(Conv1D(4, (3,), strides=(2,)))


def _cnn_lstm_models(mask_zero=False):
    """The classic text model, Keras' and ours, with the same weights."""
    vocab, steps = 30, 12
    theirs = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(vocab, 8, mask_zero=mask_zero),
            keras.layers.Conv1D(6, 3, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.LSTM(5),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    randomize_keras_weights(theirs)
    ours = Sequential(
        [
            Embedding(vocab, 8, mask_zero=mask_zero),
            Conv1D(6, 3, activation="relu"),
            MaxPooling1D(2),
            LSTM(5),
            Dense(1, activation="sigmoid"),
        ]
    )
    params = [_params_from_keras(layer) for layer in theirs.layers]
    # Padding at the end, at the start and in the middle.
    ids = np.random.default_rng(0).integers(1, vocab, (3, steps))
    ids[0, 8:] = 0
    ids[1, :5] = 0
    ids[2, 4:7] = 0
    return theirs, ours, params, ids


def test_cnn_lstm_text_model_matches_keras(request):
    theirs, ours, params, ids = _cnn_lstm_models()
    assert_parity(
        request.node.name, ours(params, jnp.asarray(ids)), theirs(ids)
    )
    assert ours.param_count((None, 12)) == theirs.count_params()
    assert ours.output_shapes((None, 12)) == [
        tuple(layer.output.shape) for layer in theirs.layers
    ]
    text = summary(ours, (None, 12), print_fn=None)
    assert "conv1d (Conv1D)              (None, 10, 6)             150" in text
    assert "max_pooling1d (MaxPooling1D) (None, 5, 6)              0" in text


def test_a_mask_stops_at_conv1d_with_a_warning_as_in_keras(request):
    """Keras warns that Conv1D does not support masking and drops the mask:
    the LSTM after it reads every step, padding included."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs, ours, params, ids = _cnn_lstm_models(mask_zero=True)
    assert any(
        "(of type Conv1D) was passed an input with a mask" in str(w.message)
        for w in caught
    )
    with pytest.warns(
        UserWarning,
        match="Conv1D was passed a mask, but it does not support masking",
    ):
        mine = ours(params, jnp.asarray(ids))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' warning again, checked above
        want = theirs(ids)
    assert_parity(request.node.name, mine, want)
    assert Conv1D(2, 3).compute_mask(None, jnp.ones((3, 12), bool)) is None


def test_cnn_lstm_model_jits_and_differentiates():
    _, ours, params, ids = _cnn_lstm_models()
    params = jax.tree.map(jnp.asarray, params)

    def loss(p):
        return jnp.mean(jnp.square(ours(p, jnp.asarray(ids))))

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(float(value))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(
        bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
        for g in jax.tree.leaves(grads[1:])
    )


def test_cnn_lstm_model_runs_unbatched_ids(key):
    model = Sequential(
        [
            Embedding(30, 8),
            Conv1D(6, 3, padding="causal"),
            MaxPooling1D(2),
            LSTM(5),
            Dense(1),
        ]
    )
    params = model.init(key, (None, None))
    ids = jnp.asarray(np.random.default_rng(2).integers(0, 30, (3, 12)))
    np.testing.assert_allclose(
        model(params, ids[2]), model(params, ids)[2], atol=1e-6
    )
    assert model.output_shape((12,)) == (1,)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(padding="causal", dilation_rate=2, groups=2),
        dict(padding="same", strides=2, data_format="channels_first"),
    ],
)
def test_conv1d_gradients(kwargs, key):
    # float64: float32 finite differences of tanh drifted by 6% on one CI run.
    with jax.enable_x64(True):
        layer = Conv1D(4, 3, activation="tanh", **kwargs)
        shape = (2, 4, 7) if "data_format" in kwargs else (2, 7, 4)
        x = jnp.asarray(_inputs(shape), jnp.float64)
        params = jax.tree.map(
            lambda p: p.astype(jnp.float64), layer.init(key, shape)
        )
        check_grads(
            jax.jit(lambda p, x: layer(p, x)),
            (params, x),
            order=1,
            modes=["rev"],
        )


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (
            dict(filters=0, kernel_size=1),
            ValueError,
            "`filters` must be a positive",
        ),
        (
            dict(filters=2, kernel_size=0),
            ValueError,
            "`kernel_size` must be a positive",
        ),
        (
            dict(filters=2, kernel_size=(1, 2)),
            ValueError,
            "tuple of 1 positive",
        ),
        (dict(filters=2, kernel_size=2, strides=0), ValueError, "`strides`"),
        (
            dict(filters=2, kernel_size=2, strides=2, dilation_rate=2),
            ValueError,
            "exclude each other",
        ),
        (
            dict(filters=5, kernel_size=2, groups=0),
            ValueError,
            "`groups` must be",
        ),
        (
            dict(filters=5, kernel_size=2, groups=2),
            ValueError,
            "`filters` must be divisible by `groups`",
        ),
        (
            dict(filters=2, kernel_size=2, padding="full"),
            ValueError,
            "`padding`",
        ),
        (
            dict(filters=2, kernel_size=2, data_format="NWC"),
            ValueError,
            "`data_format`",
        ),
        (
            dict(filters=2, kernel_size=2, activation="nope"),
            ValueError,
            "nope",
        ),
        (dict(filters=2, kernel_size=2, use_bias=1), TypeError, "`use_bias`"),
    ],
)
def test_conv1d_rejects_bad_arguments(kwargs, error, match):
    """keras/src/layers/convolutional/conv_test.py::ConvBasicTest::test_bad_init_args
    (the Conv1D cases, and their 1-D analogues)."""
    with pytest.raises(error, match=match):
        Conv1D(**kwargs)


def test_conv1d_rejects_a_window_longer_than_the_inputs():
    """keras/src/layers/convolutional/conv_test.py::ConvBasicTest::test_conv_symbolic_invalid_configuration"""
    layer = Conv1D(1, 2, dilation_rate=10)
    with pytest.raises(ValueError, match="fewer than the window of 11"):
        layer.init(jax.random.key(0), (None, 10, 3))
    with pytest.raises(ValueError, match="fewer than the window"):
        layer.output_shape((None, 10, 3))
    params = layer.init(jax.random.key(0), (None, None, 3))
    with pytest.raises(ValueError, match="fewer than the window"):
        layer(params, jnp.ones((2, 10, 3)))


def test_conv1d_rejects_bad_inputs(key):
    layer = Conv1D(4, 3, groups=2)
    params = layer.init(key, (None, None, 6))
    with pytest.raises(ValueError, match=r"\(B, T, C\) or unbatched \(T, C\)"):
        layer(params, jnp.ones((2, 3, 8, 6)))
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        Conv1D(4, 3, data_format="channels_first").init(key, (6,))
    with pytest.raises(TypeError, match="floating"):
        layer(params, jnp.ones((2, 8, 6), jnp.int32))
    with pytest.raises(ValueError, match="expects inputs with 6 channels"):
        layer(params, jnp.ones((2, 8, 4)))
    with pytest.raises(ValueError, match="divisible by 2, got 5 channels"):
        layer(params, jnp.ones((2, 8, 5)))
    with pytest.raises(ValueError, match="known channel count"):
        layer.init(key, (None, 8, None))
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        layer({"kernel": params["kernel"]}, jnp.ones((2, 8, 6)))
    with pytest.raises(TypeError, match=r"Conv1D takes \(params, x\)"):
        layer(jnp.ones((2, 8, 6)))
