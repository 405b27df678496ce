"""MaxPooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D: Keras parity,
Keras' own cases, masks, gradients and errors."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from jax.test_util import check_grads
from keras_helpers import assert_parity, randomize_keras_weights

from jaxrnn.layers import (
    Dense,
    Embedding,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
    Sequential,
)

FORMATS = ["channels_last", "channels_first"]


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _mask(kind, batch=3, steps=7):
    """Padding at the end, at the start, in the middle, or none."""
    mask = np.ones((batch, steps), bool)
    mask[0, 5:] = False
    if kind == "right":
        mask[1, 3:] = False
    elif kind == "left":
        mask[1, :4] = False
    elif kind == "middle":
        mask[1, 2:5] = False
    return mask


def _sequence(data_format, batch=3, steps=7, channels=4, seed=0):
    shape = (
        (batch, steps, channels)
        if data_format == "channels_last"
        else (batch, channels, steps)
    )
    return _inputs(shape, seed)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(
    "pool_size,strides,padding,steps",
    [
        (2, None, "valid", 7),
        (3, 1, "valid", 7),
        (3, 2, "valid", 8),
        ((2,), (3,), "valid", 7),
        (2, None, "same", 7),
        (3, 2, "same", 8),
        (4, 3, "same", 7),
        (1, 1, "same", 5),
    ],
)
def test_max_pooling1d_matches_keras(
    pool_size, strides, padding, steps, data_format, request
):
    x = _sequence(data_format, steps=steps)
    theirs = keras.layers.MaxPooling1D(
        pool_size, strides, padding, data_format
    )
    ours = MaxPooling1D(pool_size, strides, padding, data_format)
    assert_parity(request.node.name, ours({}, jnp.asarray(x)), theirs(x))
    for shape in (x.shape, (None, *x.shape[1:])):
        assert ours.output_shape(shape) == tuple(
            theirs.compute_output_shape(shape)
        )
    assert ours.param_count(x.shape) == 0


def _numpy_max_pool(x, size, stride, padding):
    """Max over windows of (B, T, C); 'same' pads the end with -inf."""
    steps = x.shape[1]
    if padding == "same":
        total = max((-(-steps // stride) - 1) * stride + size - steps, 0)
        x = np.pad(
            x,
            ((0, 0), (total // 2, total - total // 2), (0, 0)),
            constant_values=-np.inf,
        )
    count = (x.shape[1] - size) // stride + 1
    return np.stack(
        [x[:, t * stride : t * stride + size].max(1) for t in range(count)], 1
    )


@pytest.mark.parametrize(
    "pool_size,strides,padding,data_format",
    [
        (2, 1, "valid", "channels_last"),
        (2, 1, "valid", "channels_first"),
        (2, 1, "same", "channels_last"),
        (2, 1, "same", "channels_first"),
        ((2,), (2,), "valid", "channels_last"),
        ((2,), (2,), "valid", "channels_first"),
    ],
)
def test_max_pooling1d_keras_correctness_cases(
    pool_size, strides, padding, data_format, request
):
    """keras/src/layers/pooling/max_pooling_test.py::MaxPoolingCorrectnessTest::test_max_pooling1d"""
    x = np.arange(24, dtype="float32").reshape((2, 3, 4))
    layer = MaxPooling1D(pool_size, strides, padding, data_format)
    channels_first = data_format == "channels_first"
    want = _numpy_max_pool(
        x.swapaxes(1, 2) if channels_first else x,
        layer.pool_size[0],
        layer.strides[0],
        padding,
    )
    got = np.asarray(layer({}, jnp.asarray(x)))
    assert_parity(
        request.node.name, got.swapaxes(1, 2) if channels_first else got, want
    )


@pytest.mark.parametrize(
    "pool_size,strides,padding,data_format,shape,out",
    [
        (2, 1, "valid", "channels_last", (3, 5, 4), (3, 4, 4)),
        (2, 1, "same", "channels_first", (3, 5, 4), (3, 5, 4)),
        ((2,), (2,), "valid", "channels_last", (3, 5, 4), (3, 2, 4)),
    ],
)
def test_max_pooling1d_keras_basic_shapes(
    pool_size, strides, padding, data_format, shape, out
):
    """keras/src/layers/pooling/max_pooling_test.py::MaxPoolingBasicTest::test_max_pooling1d"""
    layer = MaxPooling1D(pool_size, strides, padding, data_format)
    assert layer.init(jax.random.key(0), shape) == {}
    assert layer.output_shape(shape) == out
    assert layer({}, jnp.ones(shape)).shape == out


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("kind", ["none", "right", "left", "middle"])
def test_global_average_pooling1d_matches_keras(
    data_format, keepdims, kind, request
):
    x = _sequence(data_format)
    theirs = keras.layers.GlobalAveragePooling1D(data_format, keepdims)
    ours = GlobalAveragePooling1D(data_format, keepdims)
    mask = None if kind == "none" else _mask(kind)
    assert_parity(
        request.node.name,
        ours(
            {},
            jnp.asarray(x),
            mask=None if mask is None else jnp.asarray(mask),
        ),
        theirs(x, mask=mask),
    )
    for shape in (x.shape, (None, *x.shape[1:])):
        assert ours.output_shape(shape) == tuple(
            theirs.compute_output_shape(shape)
        )
    assert ours.compute_mask(x, mask) is None


def _numpy_average(x, data_format, keepdims, mask=None):
    """The masked mean over time, in float64."""
    axis, channel_axis = (1, 2) if data_format == "channels_last" else (2, 1)
    weight = (
        np.ones(np.delete(x.shape, channel_axis))
        if mask is None
        else mask.astype(np.float64)
    )
    weight = np.expand_dims(weight, channel_axis)
    out = (x * weight).sum(axis) / weight.sum(axis)
    return np.expand_dims(out, axis) if keepdims else out


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling1d_keras_correctness_case(
    data_format, keepdims, request
):
    """keras/src/layers/pooling/global_average_pooling_test.py::GlobalAveragePoolingCorrectnessTest::test_global_average_pooling1d

    Keras' test passes an int32 0/1 mask; jaxrnn takes bool masks only."""
    x = np.arange(24, dtype="float32").reshape((2, 3, 4))
    layer = GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims)
    assert_parity(
        request.node.name,
        layer({}, jnp.asarray(x)),
        _numpy_average(x, data_format, keepdims).astype("float32"),
    )
    mask = (
        np.array([[1, 1, 0], [0, 1, 0]])
        if data_format == "channels_last"
        else np.array([[1, 1, 0, 0], [0, 1, 0, 1]])
    )
    got = layer({}, jnp.asarray(x), mask=jnp.asarray(mask, bool))
    assert_parity(
        request.node.name,
        got,
        _numpy_average(x, data_format, keepdims, mask).astype("float32"),
    )


def test_global_average_pooling1d_of_a_fully_masked_row_is_nan_as_in_keras():
    x = _inputs((2, 3, 2))
    mask = np.array([[True, False, True], [False, False, False]])
    ours = np.asarray(
        GlobalAveragePooling1D()({}, jnp.asarray(x), mask=jnp.asarray(mask))
    )
    theirs = np.asarray(keras.layers.GlobalAveragePooling1D()(x, mask=mask))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.isnan(ours[1]).all()
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-6)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_max_pooling1d_matches_keras(data_format, keepdims, request):
    x = _sequence(data_format)
    theirs = keras.layers.GlobalMaxPooling1D(data_format, keepdims)
    ours = GlobalMaxPooling1D(data_format, keepdims)
    assert_parity(request.node.name, ours({}, jnp.asarray(x)), theirs(x))
    for shape in (x.shape, (None, *x.shape[1:])):
        assert ours.output_shape(shape) == tuple(
            theirs.compute_output_shape(shape)
        )


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_max_pooling1d_keras_correctness_case(
    data_format, keepdims, request
):
    """keras/src/layers/pooling/global_max_pooling_test.py::GlobalMaxPoolingCorrectnessTest::test_global_max_pooling1d"""
    x = np.arange(24, dtype="float32").reshape((2, 3, 4))
    axis = 1 if data_format == "channels_last" else 2
    want = x.max(axis, keepdims=keepdims)
    got = GlobalMaxPooling1D(data_format, keepdims)({}, jnp.asarray(x))
    assert_parity(request.node.name, got, want)


def test_global_max_pooling1d_ignores_a_mask_with_a_warning_as_keras(request):
    """Keras' GlobalMaxPooling1D does not support masking: it warns and
    takes the maximum over every step, masked ones included."""
    x = _inputs((3, 7, 4))
    mask = _mask("middle")
    with pytest.warns(UserWarning, match="does not support masking"):
        ours = GlobalMaxPooling1D()({}, jnp.asarray(x), mask=jnp.asarray(mask))
    assert_parity(
        request.node.name, ours, keras.layers.GlobalMaxPooling1D()(x)
    )
    assert GlobalMaxPooling1D().compute_mask(x, mask) is None
    with pytest.warns(UserWarning, match="MaxPooling1D was passed a mask"):
        MaxPooling1D()({}, jnp.asarray(x), mask=jnp.asarray(mask))
    assert MaxPooling1D().compute_mask(x, mask) is None


@pytest.mark.parametrize(
    "layer",
    [
        MaxPooling1D(3, 2, "same"),
        MaxPooling1D(2, data_format="channels_first"),
        GlobalAveragePooling1D(),
        GlobalAveragePooling1D("channels_first", True),
        GlobalMaxPooling1D(keepdims=True),
    ],
    ids=repr,
)
def test_unbatched_is_one_row_of_a_batch(layer):
    x = jnp.asarray(_inputs((3, 7, 4)))
    np.testing.assert_array_equal(layer({}, x[1]), layer({}, x)[1])
    assert layer.output_shape((7, 4)) == layer.output_shape((3, 7, 4))[1:]


def test_unbatched_average_takes_a_time_mask():
    x = jnp.asarray(_inputs((3, 7, 4)))
    mask = jnp.asarray(_mask("left"))
    layer = GlobalAveragePooling1D()
    np.testing.assert_allclose(
        layer({}, x[1], mask=mask[1]), layer({}, x, mask=mask)[1], atol=1e-6
    )


def _embedding_average_models(steps=7):
    theirs = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(20, 6, mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    randomize_keras_weights(theirs)
    ours = Sequential(
        [
            Embedding(20, 6, mask_zero=True),
            GlobalAveragePooling1D(),
            Dense(3, activation="softmax"),
        ]
    )
    params = [
        dict(zip((v.name for v in layer.weights), layer.get_weights()))
        for layer in theirs.layers
    ]
    ids = np.random.default_rng(1).integers(1, 20, (3, steps))
    ids[0, 5:] = 0  # padding at the end,
    ids[1, :4] = 0  # at the start,
    ids[2, 2:5] = 0  # in the middle
    return theirs, ours, params, ids


def test_embedding_average_dense_model_matches_keras(request):
    theirs, ours, params, ids = _embedding_average_models()
    assert_parity(
        request.node.name, ours(params, jnp.asarray(ids)), theirs(ids)
    )
    assert ours.param_count((None, 7)) == theirs.count_params()
    # The mask reaches the average: padding ids change nothing.
    trimmed = ours(params, jnp.asarray(ids[:1, :5]))
    np.testing.assert_allclose(
        ours(params, jnp.asarray(ids))[:1], trimmed, atol=1e-6
    )


def test_pooling_jits_and_differentiates():
    _, ours, params, ids = _embedding_average_models()
    params = jax.tree.map(jnp.asarray, params)

    def loss(p):
        return -jnp.mean(jnp.log(ours(p, jnp.asarray(ids))[:, 0]))

    grads = jax.jit(jax.grad(loss))(params)
    table = grads[0]["embeddings"]
    # Padding id 0 is masked out of the average: no gradient reaches it.
    assert float(jnp.abs(table[0]).max()) == 0.0
    assert float(jnp.abs(table[1:]).max()) > 0.0
    x = jnp.asarray(_inputs((2, 7, 3)))
    mask = jnp.asarray(_mask("middle", batch=2))
    for layer in (MaxPooling1D(3, 2, "same"), GlobalMaxPooling1D()):
        check_grads(
            jax.jit(lambda x: layer({}, x)),
            (x,),
            order=1,
            modes=["rev"],
            eps=1e-3,
        )
    check_grads(
        jax.jit(lambda x: GlobalAveragePooling1D()({}, x, mask=mask)),
        (x,),
        order=1,
        modes=["rev"],
        eps=1e-2,
    )


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: MaxPooling1D(0), ValueError, "`pool_size`"),
        (lambda: MaxPooling1D(2, strides=0), ValueError, "`strides`"),
        (lambda: MaxPooling1D(2, padding="causal"), ValueError, "`padding`"),
        (lambda: MaxPooling1D(data_format="NWC"), ValueError, "`data_format`"),
        (
            lambda: GlobalAveragePooling1D(data_format="channels_middle"),
            ValueError,
            "`data_format`",
        ),
        (lambda: GlobalMaxPooling1D(keepdims=1), TypeError, "`keepdims`"),
    ],
)
def test_pooling_rejects_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_pooling_rejects_bad_inputs():
    with pytest.raises(
        ValueError,
        match=r"MaxPooling1D expects `inputs` "
        r"\(B, T, C\) or unbatched \(T, C\)",
    ):
        MaxPooling1D()({}, jnp.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="fewer than the window of 4"):
        MaxPooling1D(4)({}, jnp.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="fewer than the window"):
        MaxPooling1D(4).output_shape((None, 3, 5))
    with pytest.raises(TypeError, match="floating"):
        GlobalMaxPooling1D()({}, jnp.ones((2, 3, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"\(B, C, T\) or unbatched \(C, T\)"):
        GlobalAveragePooling1D("channels_first")({}, jnp.ones((5,)))
    with pytest.raises(
        TypeError, match=r"GlobalAveragePooling1D takes \(params, x\)"
    ):
        GlobalAveragePooling1D()(jnp.ones((2, 3, 4)))


def test_average_pooling_rejects_bad_masks():
    layer = GlobalAveragePooling1D()
    x = jnp.ones((2, 5, 3))
    with pytest.raises(
        TypeError, match="`mask` must be a bool array, got int32"
    ):
        layer({}, x, mask=jnp.ones((2, 5), jnp.int32))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 5\)"):
        layer({}, x, mask=jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 5\)"):
        GlobalAveragePooling1D("channels_first")(
            {}, jnp.ones((2, 3, 5)), mask=jnp.ones((2, 3), bool)
        )
