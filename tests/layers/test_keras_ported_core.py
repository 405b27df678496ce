"""Hard-coded cases from Keras' own tests of the companion layers
(TimeDistributed, Embedding, Dense, Dropout, BatchNormalization,
LayerNormalization) and of integer inputs to the recurrent layers, run on
jaxrnn. Each test names the Keras test it ports; where jaxrnn's contract
differs (error types, no `trainable` flag) the docstring says how."""

import dataclasses

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import assert_parity

from jaxrnn import GRUCell, LSTMCell
from jaxrnn.layers import (
    GRU,
    LSTM,
    RNN,
    BatchNormalization,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    LayerNormalization,
    Sequential,
    SimpleRNN,
    TimeDistributed,
)

_SEQUENCE = np.arange(24).reshape((3, 2, 4)).astype("float32")
_KERNEL = np.array([[1.0, -2.0], [3.0, -4.0]], "float32")


def _constant_dense(units, value=0.01):
    return Dense(
        units,
        use_bias=False,
        kernel_initializer=jax.nn.initializers.constant(value),
    )


# TimeDistributed ------------------------------------------------------------


def test_time_distributed_basics():
    """keras/src/layers/rnn/time_distributed_test.py::test_basics"""
    layer = TimeDistributed(Dense(1, use_bias=False))
    params = layer.init(jax.random.key(0), (3, 2, 4))
    assert layer(params, jnp.ones((3, 2, 4))).shape == (3, 2, 1)
    assert layer.output_shape((3, 2, 4)) == (3, 2, 1)
    assert list(params) == ["kernel"]
    mask = jnp.ones((3, 2), bool)
    assert layer.compute_mask(jnp.ones((3, 2, 4)), mask) is mask


def test_time_distributed_correctness():
    """keras/src/layers/rnn/time_distributed_test.py::test_correctness"""
    layer = TimeDistributed(_constant_dense(1))
    params = layer.init(jax.random.key(0), _SEQUENCE.shape)
    np.testing.assert_allclose(
        layer(params, jnp.asarray(_SEQUENCE)),
        [[[0.06], [0.22]], [[0.38], [0.53999996]], [[0.7], [0.86]]],
        rtol=1e-6,
        atol=1e-6,
    )


@dataclasses.dataclass(frozen=True)
class _MaskedDense:
    """Keras' MaskedDense of test_masking: a Dense(1) with kernel 0.01 whose
    outputs are multiplied by the mask."""

    units: int

    @property
    def dense(self):
        return _constant_dense(self.units)

    def init(self, key, input_shape):
        return self.dense.init(key, input_shape)

    def output_shape(self, input_shape):
        return self.dense.output_shape(input_shape)

    def __call__(self, params, x, *, mask=None, key=None, training=False):
        unmasked = self.dense(params, x)
        if mask is None:
            return unmasked
        return (unmasked.T * mask.astype(x.dtype)).T


def test_time_distributed_masking():
    """keras/src/layers/rnn/time_distributed_test.py::test_masking"""
    layer = TimeDistributed(_MaskedDense(1))
    params = layer.init(jax.random.key(0), _SEQUENCE.shape)
    mask = jnp.array([[False, True], [True, False], [True, True]])
    np.testing.assert_allclose(
        layer(params, jnp.asarray(_SEQUENCE), mask=mask),
        [[[0], [0.22]], [[0.38], [0]], [[0.7], [0.86]]],
        rtol=1e-6,
        atol=1e-6,
    )


def test_time_distributed_with_mask_zero(key):
    """keras/src/layers/rnn/time_distributed_test.py::test_with_mask_zero
    (the forward pass and the mask it hands on; no fit)."""
    model = Sequential(
        [
            Embedding(10, 5, mask_zero=True),
            TimeDistributed(Dense(5, activation="softmax")),
        ]
    )
    ids = jax.random.randint(key, (22, 20), 0, 10)
    params = model.init(key, (None, 20))
    y = model(params, ids)
    assert y.shape == (22, 20, 5)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


def _td_case():
    td = TimeDistributed(Dense(5, activation="softmax"))
    inputs = jnp.zeros((4, 5, 3))
    return td, td.init(jax.random.key(0), inputs.shape), inputs


def test_time_distributed_mask_validation_with_mismatched_timesteps():
    """keras/src/layers/rnn/time_distributed_test.py::
    test_mask_validation_with_mismatched_timesteps"""
    td, params, inputs = _td_case()
    assert td(params, inputs, mask=jnp.ones((4, 5), bool)).shape == (4, 5, 5)
    with pytest.raises(
        ValueError,
        match=r"`mask` must have shape \(B, T\).*"
        r"\(4, 5\), got \(4, 6\)",
    ):
        td(params, inputs, mask=jnp.ones((4, 6), bool))


def test_time_distributed_mask_validation_with_mismatched_batch_size():
    """keras/src/layers/rnn/time_distributed_test.py::
    test_mask_validation_with_mismatched_batch_size"""
    td, params, inputs = _td_case()
    with pytest.raises(ValueError, match=r"`mask`.*\(4, 5\), got \(5, 5\)"):
        td(params, inputs, mask=jnp.ones((5, 5), bool))


def test_time_distributed_mask_validation_with_correct_shape():
    """keras/src/layers/rnn/time_distributed_test.py::
    test_mask_validation_with_correct_shape"""
    td, params, inputs = _td_case()
    assert td(params, inputs, mask=jnp.ones((4, 5, 1), bool)).shape == (
        4,
        5,
        5,
    )


def test_time_distributed_mask_validation_with_3d_mask():
    """keras/src/layers/rnn/time_distributed_test.py::
    test_mask_validation_with_3d_mask"""
    td, params, inputs = _td_case()
    assert td(params, inputs, mask=jnp.ones((4, 5, 2), bool)).shape == (
        4,
        5,
        5,
    )
    with pytest.raises(ValueError, match=r"`mask`.*got \(4, 6, 2\)"):
        td(params, inputs, mask=jnp.ones((4, 6, 2), bool))


def test_time_distributed_mask_validation_with_none_mask():
    """keras/src/layers/rnn/time_distributed_test.py::
    test_mask_validation_with_none_mask"""
    td, params, inputs = _td_case()
    assert td(params, inputs, mask=None).shape == (4, 5, 5)


def test_time_distributed_mask_validation_with_both_mismatched():
    """keras/src/layers/rnn/time_distributed_test.py::
    test_mask_validation_with_both_batch_and_timesteps_mismatched"""
    td, params, inputs = _td_case()
    with pytest.raises(ValueError, match=r"`mask`.*got \(5, 6\)"):
        td(params, inputs, mask=jnp.ones((5, 6), bool))


def test_time_distributed_mask_of_rank_one_is_refused():
    """Keras' check in time_distributed.py: 'must be at least 2D'."""
    td, params, inputs = _td_case()
    with pytest.raises(ValueError, match=r"`mask` must have shape \(B, T\)"):
        td(params, inputs, mask=jnp.ones((4,), bool))


# Embedding ------------------------------------------------------------------


def test_embedding_basics():
    """keras/src/layers/core/embedding_test.py::test_embedding_basics"""
    layer = Embedding(4, 3)
    params = layer.init(jax.random.key(0), (2,))
    assert layer(params, jnp.zeros((2,), jnp.int32)).shape == (2, 3)
    assert layer.param_count((2,)) == 12
    masked = Embedding(5, 4, mask_zero=True)
    ids = jnp.array([[1, 0, 2], [0, 3, 4]])
    assert masked(masked.init(jax.random.key(0)), ids).shape == (2, 3, 4)
    np.testing.assert_array_equal(masked.compute_mask(ids, None), ids != 0)


def test_embedding_correctness():
    """keras/src/layers/core/embedding_test.py::test_correctness"""
    params = {"embeddings": jnp.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])}
    out = Embedding(3, 2)(params, np.array([2, 1, 0]))
    np.testing.assert_array_equal(out, [[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]])


def test_embedding_float_ids_cast_to_int32():
    """keras/src/layers/core/embedding.py's call casts ids that are not
    int32 or int64 to int32 (floats truncate toward zero)."""
    params = {"embeddings": jnp.array([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])}
    out = Embedding(3, 2)(params, np.array([2.9, 1.2, -0.7]))
    np.testing.assert_array_equal(out, [[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]])


# Dense ----------------------------------------------------------------------


def test_dense_basics():
    """keras/src/layers/core/dense_test.py::test_dense_basics"""
    layer = Dense(4, use_bias=False)
    assert layer(
        layer.init(jax.random.key(0), (2, 3)), jnp.ones((2, 3))
    ).shape == (2, 4)
    assert list(layer.init(jax.random.key(0), (2, 3))) == ["kernel"]
    layer = Dense(5)
    assert layer(
        layer.init(jax.random.key(0), (2, 3, 4)), jnp.ones((2, 3, 4))
    ).shape == (2, 3, 5)


@pytest.mark.parametrize(
    "units,error",
    [
        (0, ValueError),
        (-3, ValueError),
        (2.5, TypeError),
        (None, TypeError),
        ("64", TypeError),
    ],
)
def test_dense_invalid_units_raises(units, error):
    """keras/src/layers/core/dense_test.py::test_dense_invalid_units_raises
    (Keras raises ValueError throughout; jaxrnn raises TypeError for a value
    of the wrong kind)."""
    with pytest.raises(error, match="`units` must be a positive int"):
        Dense(units)


def test_dense_correctness():
    """keras/src/layers/core/dense_test.py::test_dense_correctness"""
    inputs = jnp.array([[-1.0, 2.0]])
    relu = Dense(2, activation="relu")
    params = {"kernel": jnp.asarray(_KERNEL), "bias": jnp.array([5.0, -6.0])}
    np.testing.assert_array_equal(relu(params, inputs), [[10.0, 0.0]])
    plain = Dense(2, use_bias=False)
    assert "bias" not in plain.init(jax.random.key(0), (1, 2))
    np.testing.assert_array_equal(
        plain({"kernel": jnp.asarray(_KERNEL)}, inputs), [[5.0, -6.0]]
    )


def test_dense_no_activation():
    """keras/src/layers/core/dense_test.py::test_dense_no_activation and
    test_dense_without_activation_set"""
    layer = Dense(2, use_bias=False, activation=None)
    np.testing.assert_array_equal(
        layer({"kernel": jnp.asarray(_KERNEL)}, jnp.array([[-1.0, 2.0]])),
        [[5.0, -6.0]],
    )


def test_dense_with_activation():
    """keras/src/layers/core/dense_test.py::test_dense_with_activation"""
    layer = Dense(2, use_bias=False, activation="relu")
    np.testing.assert_array_equal(
        layer({"kernel": jnp.asarray(_KERNEL)}, jnp.array([[-1.0, 2.0]])),
        [[5.0, 0.0]],
    )


def test_dense_errors():
    """keras/src/layers/core/dense_test.py::test_dense_errors"""
    layer = Dense(2, activation="relu")
    params = layer.init(jax.random.key(0), (1, 2))
    layer(params, jnp.ones((1, 2)))
    with pytest.raises(
        ValueError, match=r"Dense expects inputs \(\.\.\., 2\)"
    ):
        layer(params, jnp.ones((1, 3)))


# Dropout --------------------------------------------------------------------


def test_dropout_basics():
    """keras/src/layers/regularization/dropout_test.py::test_dropout_basics"""
    layer = Dropout(0.2)
    assert layer.init(jax.random.key(0), (2, 3)) == {}
    y = layer({}, jnp.ones((2, 3)), key=jax.random.key(1), training=True)
    assert y.shape == (2, 3)


def test_dropout_rescaling():
    """keras/src/layers/regularization/dropout_test.py::test_dropout_rescaling"""
    outputs = Dropout(0.5)(
        {}, jnp.ones((20, 500)), key=jax.random.key(1337), training=True
    )
    np.testing.assert_allclose(np.mean(outputs), 1.0, atol=0.02)
    np.testing.assert_allclose(np.max(outputs), 2.0)


@pytest.mark.parametrize(
    "noise_shape", [(None, 1, None), (20, 1, 10)], ids=["dynamic", "static"]
)
def test_dropout_partial_noise_shape(noise_shape):
    """keras/src/layers/regularization/dropout_test.py::
    test_dropout_partial_noise_shape_dynamic and _static"""
    outputs = Dropout(0.5, noise_shape=noise_shape)(
        {}, jnp.ones((20, 5, 10)), key=jax.random.key(0), training=True
    )
    np.testing.assert_array_equal(outputs[:, 0, :], outputs[:, 1, :])


@pytest.mark.parametrize("rate", [-0.5, 1.5])
def test_dropout_rate_out_of_range(rate):
    """keras/src/layers/regularization/dropout_test.py::
    test_dropout_negative_rate and test_dropout_rate_greater_than_one"""
    with pytest.raises(ValueError, match=r"`rate` must be in \[0, 1\)"):
        Dropout(rate=rate)


@pytest.mark.parametrize(
    "noise_shape,want",
    [
        (None, None),
        ((20, 1, 10), (20, 1, 10)),
        ((None, 1, None), (None, 1, None)),
        ([20, 1, 10], (20, 1, 10)),
    ],
)
def test_dropout_validate_noise_shape(noise_shape, want):
    """keras/src/layers/regularization/dropout_test.py::
    test_validate_noise_shape_none, _integer_tuple, _none_values and
    _cast_to_a_tuple"""
    layer = Dropout(0.5, noise_shape=noise_shape)
    assert layer.noise_shape == want
    assert want is None or isinstance(layer.noise_shape, tuple)


@pytest.mark.parametrize(
    "noise_shape,error,match",
    [
        ("Invalid", TypeError, "tuple or list of ints"),
        ((20, 1.5, 10), TypeError, "must hold ints and None"),
        ((20, -1, 10), ValueError, "positive ints or None"),
        ((20, 0, 10), ValueError, "positive ints or None"),
    ],
)
def test_dropout_invalid_noise_shape(noise_shape, error, match):
    """keras/src/layers/regularization/dropout_test.py::
    test_validate_noise_shape_non_iterable, _invalid_type, _negative_value
    and _zero_value (Keras raises ValueError throughout; jaxrnn raises
    TypeError for a value of the wrong kind)."""
    with pytest.raises(error, match=match):
        Dropout(0.5, noise_shape=noise_shape)


# BatchNormalization ---------------------------------------------------------


def _counts(layer, input_shape):
    params = layer.init(jax.random.key(0), input_shape)
    mask = Sequential([layer]).trainable_mask([params])[0]
    return sum(mask.values()), sum(not t for t in mask.values())


@pytest.mark.parametrize(
    "kwargs,input_shape,counts",
    [
        (dict(center=True, scale=True), (2, 3), (2, 2)),
        (dict(center=False, scale=False), (2, 3), (0, 2)),
        (dict(center=True, scale=True), (2, 4, 4, 3), (2, 2)),
    ],
)
def test_bn_basics(kwargs, input_shape, counts):
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_bn_basics (regularizers aside)"""
    layer = BatchNormalization(**kwargs)
    params = layer.init(jax.random.key(0), input_shape)
    y = layer(params, jnp.ones(input_shape), training=True)
    assert y.shape == input_shape
    assert _counts(layer, input_shape) == counts


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("input_shape", [(5, 2, 3), (5, 3, 3, 2)])
@pytest.mark.parametrize("moving_mean_initializer", ["zeros", "ones"])
@pytest.mark.parametrize("moving_variance_initializer", ["zeros", "ones"])
def test_bn_correctness(
    axis, input_shape, moving_mean_initializer, moving_variance_initializer
):
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_correctness (a bool mask where Keras' uses a Masking layer)"""
    layer = BatchNormalization(
        axis=axis,
        momentum=0,
        moving_mean_initializer=moving_mean_initializer,
        moving_variance_initializer=moving_variance_initializer,
    )
    params = layer.init(jax.random.key(0), input_shape)
    x = (
        np.random.default_rng(0)
        .normal(5.0, 10.0, input_shape)
        .astype("float32")
    )
    out = jnp.asarray(x)
    for _ in range(3):
        out, params = layer.apply(params, out, training=True)
    broadcast_shape = [1] * len(input_shape)
    broadcast_shape[axis] = input_shape[axis]
    out = (
        np.asarray(out) - np.reshape(params["beta"], broadcast_shape)
    ) / np.reshape(params["gamma"], broadcast_shape)
    reduction_axes = tuple(
        a for a in range(len(input_shape)) if a != axis % len(input_shape)
    )
    np.testing.assert_allclose(np.mean(out, reduction_axes), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.std(out, reduction_axes), 1.0, atol=1e-3)
    np.testing.assert_allclose(params["moving_mean"], 0.0, atol=1e-3)
    np.testing.assert_allclose(params["moving_variance"], 1.0, atol=1e-3)

    # Inference done before training shouldn't match.
    inference_out = layer(params, jnp.asarray(x), training=False)
    training_out, params = layer.apply(params, jnp.asarray(x), training=True)
    assert not np.allclose(inference_out, training_out, atol=1e-6)
    # Since momentum is zero, inference after training should match.
    training_out, params = layer.apply(params, jnp.asarray(x), training=True)
    inference_out = layer(params, jnp.asarray(x), training=False)
    np.testing.assert_allclose(inference_out, training_out, atol=1e-5)

    x[:, 1, :] = 0.0
    mask = jnp.asarray(np.any(x != 0.0, axis=-1))
    # Masked result with no training should not differ.
    np.testing.assert_allclose(
        layer(params, jnp.asarray(x), training=False),
        layer(params, jnp.asarray(x), mask=mask, training=False),
    )
    # Masked result should differ from unmasked result.
    assert not np.allclose(
        layer(params, jnp.asarray(x), training=False),
        layer(params, jnp.asarray(x), mask=mask, training=True),
        atol=1e-6,
    )


def test_bn_input_fully_masked():
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_input_fully_masked"""
    norm = BatchNormalization(scale=False, center=False)
    params = norm.init(jax.random.key(0), (4, 5))
    y = norm(
        params,
        jnp.zeros((4, 5)),
        mask=jnp.zeros((4,), jnp.float32),
        training=True,
    )
    np.testing.assert_array_equal(y, np.zeros((4, 5), np.float32))


@pytest.mark.parametrize("mask_value", [0.0, 0.1, 1])
def test_bn_ignore_masked_values(mask_value):
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_bachnorm_ignore_masked_values (the statistics of one training
    batch with momentum 0; a bool mask where Keras uses a Masking layer)"""
    padded_data = np.array(
        [
            [
                [1, 5],
                [2, 5],
                [mask_value, mask_value],
                [mask_value, mask_value],
            ]
            for _ in range(10)
        ],
        dtype="float32",
    )
    mask = jnp.asarray(np.any(padded_data != mask_value, axis=-1))
    layer = BatchNormalization(momentum=0.0)
    params = layer.init(jax.random.key(0), (None, None, 2))
    _, params = layer.apply(
        params, jnp.asarray(padded_data), mask=mask, training=True
    )
    np.testing.assert_allclose(params["moving_mean"], [1.5, 5.0], atol=1e-6)
    np.testing.assert_allclose(
        params["moving_variance"], [0.25, 0.0], atol=1e-6
    )


def test_bn_trainable_behavior():
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_trainable_behavior (jaxrnn has no `trainable` flag: freezing is
    `training=False`, and the optimizer's mask is Sequential.trainable_mask)"""
    layer = BatchNormalization(axis=-1, momentum=0.8, epsilon=1e-7)
    params = layer.init(jax.random.key(0), (1, 4, 4, 3))
    assert len(params) == 4 and _counts(layer, (1, 4, 4, 3)) == (2, 2)
    x = jnp.asarray(
        np.random.default_rng(0).normal(5.0, 10.0, (200, 4, 4, 3)), jnp.float32
    )
    # Frozen (Keras' trainable=False runs in inference mode): near identity.
    np.testing.assert_allclose(layer(params, x), x, rtol=1e-6, atol=1e-6)
    for _ in range(10):
        out, params = layer.apply(params, x, training=True)
    out = (
        np.asarray(out) - np.reshape(params["beta"], (1, 1, 1, 3))
    ) / np.reshape(params["gamma"], (1, 1, 1, 3))
    np.testing.assert_allclose(np.mean(out, axis=(0, 1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.std(out, axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_bn_masked_broadcast_normalization():
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_masked_broadcast_normalization"""
    layer = BatchNormalization(axis=-1, momentum=0.0, epsilon=1e-3)
    params = layer.init(jax.random.key(0), (1, 2, 3, 4))
    y, params = layer.apply(
        params, jnp.ones((1, 2, 3, 4)), training=True, mask=jnp.ones((1, 2, 1))
    )
    np.testing.assert_allclose(
        jnp.mean(y, axis=(0, 1, 2)), np.zeros(4), atol=1e-6
    )
    np.testing.assert_allclose(y, np.zeros_like(y), atol=1e-6)
    np.testing.assert_allclose(params["moving_mean"], np.ones(4), atol=1e-6)
    np.testing.assert_allclose(
        params["moving_variance"], np.zeros(4), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs,input_shape",
    [
        (dict(), (2, 3)),
        (
            dict(renorm_clipping={"rmax": 3.0, "rmin": 0.3, "dmax": 5.0}),
            (2, 4, 4, 3),
        ),
    ],
)
def test_bn_renorm_basics(kwargs, input_shape):
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_renorm_basics"""
    layer = BatchNormalization(center=True, scale=True, renorm=True, **kwargs)
    params = layer.init(jax.random.key(0), input_shape)
    x = jax.random.normal(jax.random.key(1), input_shape)
    assert layer(params, x, training=True).shape == input_shape
    # moving_mean, moving_variance, moving_stddev, renorm_mean, renorm_stddev
    assert _counts(layer, input_shape) == (2, 5)


@pytest.mark.parametrize(
    "clipping,match",
    [
        ({"random_key": 1.0}, "invalid keys"),
        ({"rmax": 0.0, "rmin": 1.0}, "rmax must be >= rmin"),
        ({"rmax": 1.0, "dmax": -1.0}, "dmax must be >= 0"),
    ],
)
def test_bn_renorm_invalid_clipping_keys(clipping, match):
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_renorm_invalid_clipping_keys"""
    with pytest.raises(ValueError, match=match):
        BatchNormalization(renorm=True, renorm_clipping=clipping)


def test_bn_renorm_stddev_initializer():
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_renorm_stddev_initializer"""
    layer = BatchNormalization(
        renorm=True,
        moving_variance_initializer=jax.nn.initializers.constant(4.0),
    )
    params = layer.init(jax.random.key(0), (None, 5))
    np.testing.assert_allclose(
        params["moving_stddev"], np.full((5,), 2.0), atol=1e-6
    )
    np.testing.assert_allclose(
        params["renorm_stddev"], np.full((5,), 2.0), atol=1e-6
    )


def test_bn_renorm_inference():
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_renorm_inference"""
    bn, bn_renorm = BatchNormalization(), BatchNormalization(renorm=True)
    params = bn.init(jax.random.key(0), (None, 10))
    keys = jax.random.split(jax.random.key(1), 4)
    params = {
        name: jax.random.normal(k, (10,)) for name, k in zip(params, keys)
    }
    renorm_params = dict(
        bn_renorm.init(jax.random.key(0), (None, 10)), **params
    )
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 10)), jnp.float32)
    np.testing.assert_allclose(
        bn(params, x, training=False),
        bn_renorm(renorm_params, x, training=False),
        atol=1e-5,
        rtol=1e-5,
    )


def test_bn_renorm_correctness():
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_renorm_correctness"""
    epsilon, momentum, renorm_momentum = 1e-3, 0.9, 0.8
    layer = BatchNormalization(
        axis=-1,
        epsilon=epsilon,
        momentum=momentum,
        renorm=True,
        renorm_momentum=renorm_momentum,
    )
    rng = np.random.default_rng(1337)
    size = (3,)
    init = {
        "moving_mean": rng.normal(0.0, 1.0, size),
        "moving_variance": np.abs(rng.normal(1.0, 0.5, size)),
    }
    init["moving_stddev"] = np.sqrt(init["moving_variance"])
    init["renorm_mean"] = rng.normal(0.0, 1.0, size)
    init["renorm_stddev"] = np.abs(rng.normal(1.0, 0.5, size))
    init["gamma"] = rng.normal(1.0, 0.1, size)
    init["beta"] = rng.normal(0.0, 0.1, size)
    params = {
        k: jnp.asarray(init[k], jnp.float32)
        for k in layer.init(jax.random.key(0), (None, 3))
    }
    x = np.array(
        [[4.0, 6.0, 2.0], [8.0, -2.0, 5.0], [6.0, 4.0, 3.0]], "float32"
    )

    batch_mean, batch_var = np.mean(x, axis=0), np.var(x, axis=0)
    batch_stddev = np.sqrt(batch_var + epsilon)
    r = batch_stddev / init["renorm_stddev"]
    d = (batch_mean - init["renorm_mean"]) / init["renorm_stddev"]
    expected_output = (((x - batch_mean) / batch_stddev) * r + d) * init[
        "gamma"
    ] + init["beta"]
    actual_output, moved = layer.apply(params, jnp.asarray(x), training=True)
    np.testing.assert_allclose(actual_output, expected_output, atol=1e-5)

    expected_moving_stddev = init[
        "moving_stddev"
    ] * momentum + batch_stddev * (1 - momentum)
    expected = {
        "renorm_mean": init["renorm_mean"] * renorm_momentum
        + batch_mean * (1 - renorm_momentum),
        "renorm_stddev": init["renorm_stddev"] * renorm_momentum
        + batch_stddev * (1 - renorm_momentum),
        "moving_mean": init["moving_mean"] * momentum
        + batch_mean * (1 - momentum),
        "moving_stddev": expected_moving_stddev,
        "moving_variance": expected_moving_stddev**2 - epsilon,
    }
    for name, value in expected.items():
        np.testing.assert_allclose(moved[name], value, atol=1e-5, err_msg=name)


def test_bn_serialization():
    """keras/src/layers/normalization/batch_normalization_test.py::
    test_serialization: the layer rebuilt from its own fields is equal."""
    layer = BatchNormalization(
        renorm=True,
        renorm_clipping={"rmax": 3.0, "rmin": 0.3, "dmax": 5.0},
        renorm_momentum=0.95,
    )
    fields = {
        f.name: getattr(layer, f.name) for f in dataclasses.fields(layer)
    }
    fields["renorm_clipping"] = dict(fields["renorm_clipping"])
    new_layer = BatchNormalization(**fields)
    assert new_layer == layer and hash(new_layer) == hash(layer)
    assert dict(new_layer.renorm_clipping) == {
        "rmax": 3.0,
        "rmin": 0.3,
        "dmax": 5.0,
    }


# LayerNormalization ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,input_shape,names",
    [
        (
            dict(gamma_initializer="ones", beta_initializer="ones"),
            (3, 4, 2),
            ["gamma", "beta"],
        ),
        (dict(scale=False, center=False), (3, 3), []),
        (dict(rms_scaling=True), (3, 3), ["gamma"]),
        (dict(axis=(-3, -2, -1)), (2, 8, 8, 3), ["gamma", "beta"]),
        (dict(), (1, 0, 10), ["gamma", "beta"]),
    ],
)
def test_ln_basics(kwargs, input_shape, names):
    """keras/src/layers/normalization/layer_normalization_test.py::
    test_ln_basics (regularizers aside)"""
    layer = LayerNormalization(**kwargs)
    params = layer.init(jax.random.key(0), input_shape)
    assert list(params) == names
    y = layer(params, jnp.ones(input_shape))
    assert y.shape == input_shape == layer.output_shape(input_shape)
    if kwargs.get("axis") == (-3, -2, -1):
        assert params["gamma"].shape == (8, 8, 3)


def test_ln_invalid_axis():
    """keras/src/layers/normalization/layer_normalization_test.py::
    test_invalid_axis"""
    with pytest.raises(
        TypeError, match="an int or a non-empty list/tuple of ints"
    ):
        LayerNormalization(axis={"axis": -1})


def test_ln_correctness():
    """keras/src/layers/normalization/layer_normalization_test.py::
    test_correctness"""
    layer = LayerNormalization()
    params = layer.init(jax.random.key(0), (2, 2, 2))
    inputs = np.random.default_rng(0).normal(5.0, 10.0, (1000, 2, 2, 2))
    out = layer(params, jnp.asarray(inputs, jnp.float32))
    out = (out - params["beta"]) / params["gamma"]
    np.testing.assert_allclose(jnp.mean(out), 0.0, atol=1e-1)
    np.testing.assert_allclose(jnp.std(out), 1.0, atol=1e-1)


def test_ln_output():
    """keras/src/layers/normalization/layer_normalization_test.py::
    test_output"""
    layer = LayerNormalization(
        beta_initializer="ones", gamma_initializer="ones"
    )
    params = layer.init(jax.random.key(0), (1, 5))
    out = layer(params, jnp.arange(5, dtype=jnp.float32)[None, :])
    np.testing.assert_allclose(
        out, [[-0.41386, 0.29307, 1.0, 1.70693, 2.41386]], atol=1e-5
    )


def test_ln_output_with_rms_scaling():
    """keras/src/layers/normalization/layer_normalization_test.py::
    test_output_with_rms_scaling"""
    layer = LayerNormalization(rms_scaling=True, gamma_initializer="ones")
    params = layer.init(jax.random.key(0), (1, 5))
    out = layer(params, jnp.arange(5, dtype=jnp.float32)[None, :])
    np.testing.assert_allclose(
        out, [[0.0, 0.70693, 1.41386, 2.12079, 2.82772]], atol=1e-5
    )


def test_ln_unsorted_axis():
    """keras/src/layers/normalization/layer_normalization_test.py::
    test_unsorted_axis"""
    x = jnp.asarray(
        np.random.default_rng(0).standard_normal((2, 3, 4)), jnp.float32
    )
    layer_sorted = LayerNormalization(axis=[-2, -1])
    layer_unsorted = LayerNormalization(axis=[-1, -2])
    out_sorted = layer_sorted(layer_sorted.init(jax.random.key(0), x.shape), x)
    out_unsorted = layer_unsorted(
        layer_unsorted.init(jax.random.key(0), x.shape), x
    )
    assert out_sorted.shape == out_unsorted.shape == (2, 3, 4)
    np.testing.assert_allclose(out_sorted, out_unsorted, rtol=1e-6)


# Integer inputs to the recurrent layers -------------------------------------

_INT_X = np.array([[[101, 202], [303, 404]]])


@pytest.mark.parametrize("merge_mode", ["ave", "concat", "mul", "sum", None])
@pytest.mark.parametrize("return_state", [True, False])
def test_bidirectional_output_shape_with_int_inputs(merge_mode, return_state):
    """keras/src/layers/rnn/bidirectional_test.py::test_output_shape"""
    layer = Bidirectional(
        LSTM(2, return_state=return_state), merge_mode=merge_mode
    )
    params = layer.init(jax.random.key(0), _INT_X.shape)
    output = layer(params, _INT_X)
    output_shape = layer.output_shape(_INT_X.shape)
    if isinstance(output_shape, list):
        assert [o.shape for o in output] == output_shape
    else:
        assert output.shape == output_shape


@pytest.mark.parametrize(
    "kind,dtype", [("LSTM", "int32"), ("GRU", "int64"), ("SimpleRNN", "uint8")]
)
def test_int_inputs_match_keras(kind, dtype, request):
    """Keras promotes int inputs with the float kernel (the cast behind
    bidirectional_test.py::test_output_shape); live parity."""
    x = np.random.default_rng(0).integers(0, 5, (2, 4, 3)).astype(dtype)
    theirs = getattr(keras.layers, kind)(3, return_sequences=True)
    with jax.numpy_dtype_promotion("standard"):  # Keras promotes implicitly
        want = theirs(x)
    ours = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}[kind](
        3, return_sequences=True
    )
    names = ("kernel", "recurrent_kernel", "bias")
    params = dict(zip(names, theirs.get_weights()))
    got = ours(params, x)
    assert got.dtype == jnp.float32
    assert_parity(request.node.name, got, want)


def test_int_inputs_to_stacked_cells_follow_the_params_dtype(key):
    layer = RNN([LSTMCell(3, param_dtype="bfloat16"), GRUCell(2)])
    params = layer.init(key, (None, 2, 3))
    x = np.arange(12).reshape(2, 2, 3) % 5
    np.testing.assert_array_equal(
        layer(params, x), layer(params, jnp.asarray(x, jnp.bfloat16))
    )
    cast = LSTM(3, dtype="bfloat16")
    p = cast.init(key, (None, 2, 3))
    assert cast(p, x).dtype == jnp.bfloat16
