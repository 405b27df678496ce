"""Masking: Keras parity, Keras' own cases, Masking -> LSTM, gradients,
errors.

(Named ``test_masking_layer``: a ``test_masking.py`` would be the home of
jaxrnn/_masking.py's tests, and the test folders are not packages.)
"""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import assert_parity, randomize_keras_weights

from jaxrnn.layers import LSTM, Dense, Masking, Sequential


def _padded(mask_value=0.0, seed=0):
    """(3, 6, 4) inputs padded with `mask_value` at the end, the start and
    in the middle, and one step with only some features equal to it."""
    x = (
        np.random.default_rng(seed)
        .standard_normal((3, 6, 4))
        .astype("float32")
    )
    x[0, 4:] = mask_value
    x[1, :2] = mask_value
    x[2, 2:4] = mask_value
    x[2, 5, :2] = mask_value  # not all features: stays valid
    return x


def test_masking_keras_correctness_case():
    """keras/src/layers/core/masking_test.py::MaskingTest::test_masking_correctness"""
    x = np.array(
        [
            [[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]],
            [[2.0, 2.0], [0.0, 0.0], [2.0, 1.0]],
        ],
        "float32",
    )
    expected_mask = [[False, True, False], [True, False, True]]
    layer = Masking(mask_value=0.0)
    assert layer.compute_mask(jnp.asarray(x), None).tolist() == expected_mask
    np.testing.assert_array_equal(layer({}, jnp.asarray(x)), x)
    assert layer.output_shape((2, 3, 2)) == (2, 3, 2)
    assert layer.init(jax.random.key(0), (2, 3, 2)) == {}


@pytest.mark.parametrize("mask_value", [0.0, -1.0, 2.5])
def test_masking_matches_keras(mask_value, request):
    x = _padded(mask_value)
    x[0, 0, 0] = mask_value + 1e-3  # close to mask_value is not equal
    theirs = keras.layers.Masking(mask_value=mask_value)
    ours = Masking(mask_value=mask_value)
    y = ours({}, jnp.asarray(x))
    assert_parity(request.node.name, y, theirs(x))
    mask = ours.compute_mask(jnp.asarray(x), None)
    np.testing.assert_array_equal(mask, theirs.compute_mask(x))
    assert mask.tolist() == [
        [True] * 4 + [False] * 2,
        [False] * 2 + [True] * 4,
        [True, True, False, False, True, True],
    ]
    # Masked steps are zeros in the output, not mask_value.
    assert not np.asarray(y)[~np.asarray(mask)].any()


def test_masking_ignores_the_incoming_mask_as_keras():
    x = _padded()
    incoming = np.zeros((3, 6), bool)
    ours = Masking().compute_mask(jnp.asarray(x), jnp.asarray(incoming))
    theirs = keras.layers.Masking().compute_mask(x, incoming)
    np.testing.assert_array_equal(ours, theirs)
    assert np.asarray(ours).any()


def test_masking_integer_inputs_as_keras(request):
    x = np.array([[[1, 2], [0, 0], [0, 3]]], "int32")
    theirs = keras.layers.Masking()
    ours = Masking()
    y = ours({}, jnp.asarray(x))
    assert y.dtype == jnp.int32
    # Keras compares int32 with its float mask_value by JAX's standard
    # promotion, which the suite's strict mode refuses.
    with jax.numpy_dtype_promotion("standard"):
        want, want_mask = theirs(x), theirs.compute_mask(x)
    assert_parity(request.node.name, y, want)
    np.testing.assert_array_equal(
        ours.compute_mask(jnp.asarray(x), None), want_mask
    )


def test_masking_unbatched_is_one_row_of_a_batch():
    x = jnp.asarray(_padded())
    layer = Masking()
    np.testing.assert_array_equal(layer({}, x[1]), layer({}, x)[1])
    np.testing.assert_array_equal(
        layer.compute_mask(x[1], None), layer.compute_mask(x, None)[1]
    )


def _masking_lstm_models(return_sequences=False):
    theirs = keras.Sequential(
        [
            keras.Input((6, 4)),
            keras.layers.Masking(),
            keras.layers.LSTM(5, return_sequences=return_sequences),
            keras.layers.Dense(2),
        ]
    )
    randomize_keras_weights(theirs)
    ours = Sequential(
        [Masking(), LSTM(5, return_sequences=return_sequences), Dense(2)]
    )
    params = [
        dict(zip((v.name for v in layer.weights), layer.get_weights()))
        for layer in theirs.layers
    ]
    return theirs, ours, params


@pytest.mark.parametrize("return_sequences", [False, True])
def test_masking_lstm_model_matches_keras(return_sequences, request):
    theirs, ours, params = _masking_lstm_models(return_sequences)
    x = _padded()
    assert_parity(request.node.name, ours(params, jnp.asarray(x)), theirs(x))
    assert ours.param_count((None, 6, 4)) == theirs.count_params()


def test_masking_lstm_keras_case(request):
    """keras/src/layers/core/masking_test.py::MaskingTest::test_masking_with_tensor"""
    theirs = keras.Sequential(
        [keras.Input((3, 2)), keras.layers.Masking(0.0), keras.layers.LSTM(1)]
    )
    randomize_keras_weights(theirs)
    ours = Sequential([Masking(0.0), LSTM(1)])
    params = [
        dict(zip((v.name for v in layer.weights), layer.get_weights()))
        for layer in theirs.layers
    ]
    x = np.array(
        [
            [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]],
            [[2.0, 2.0], [2.0, 1.0], [0.0, 0.0]],
        ],
        "float32",
    )
    assert_parity(request.node.name, ours(params, jnp.asarray(x)), theirs(x))


def test_masking_lstm_model_jits_and_differentiates():
    _, ours, params = _masking_lstm_models()
    params = jax.tree.map(jnp.asarray, params)
    x = jnp.asarray(_padded())

    def loss(p, x):
        return jnp.mean(jnp.square(ours(p, x)))

    grad_params, grad_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    assert all(
        bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grad_params)
    )
    # Masked steps never reach the output: their inputs get no gradient.
    mask = Masking().compute_mask(x, None)
    assert float(jnp.abs(grad_x[~mask]).max()) == 0.0
    assert float(jnp.abs(grad_x[mask]).max()) > 0.0


@pytest.mark.parametrize(
    "mask_value,error",
    [
        ("0", TypeError),
        (None, TypeError),
        (True, TypeError),
        (jnp.zeros(4), TypeError),
    ],
)
def test_masking_rejects_a_non_number_mask_value(mask_value, error):
    with pytest.raises(error, match="`mask_value` must be a real number"):
        Masking(mask_value)


def test_masking_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"inputs \(\.\.\., D\)"):
        Masking()({}, jnp.float32(1.0))
    with pytest.raises(TypeError, match="real .* inputs, got complex64"):
        Masking().compute_mask(jnp.ones((2, 3), jnp.complex64), None)
    with pytest.raises(TypeError, match=r"Masking takes \(params, x\)"):
        Masking()(jnp.ones((2, 3, 4)))
