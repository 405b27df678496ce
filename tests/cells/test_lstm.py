"""LSTMCell specifics: bias layout and the unit forget bias."""

import jax.numpy as jnp
import numpy as np

import jaxrnn


def test_unit_forget_bias_sets_the_forget_slice(key):
    params = jaxrnn.LSTMCell(3).init(key, 2)
    np.testing.assert_array_equal(
        params["bias"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    )


def test_unit_forget_bias_off(key):
    params = jaxrnn.LSTMCell(3, unit_forget_bias=False).init(key, 2)
    np.testing.assert_array_equal(params["bias"], np.zeros(12))


def test_unit_forget_bias_with_random_bias_initializer(key):
    bias = jaxrnn.LSTMCell(64, bias_initializer="random_normal").init(key, 2)[
        "bias"
    ]
    np.testing.assert_array_equal(bias[64:128], np.ones(64))
    assert not np.allclose(bias[:64], bias[128:192])


def test_carry_is_h_and_c(key):
    cell = jaxrnn.LSTMCell(3)
    h, c = cell.initial_carry((2,))
    assert h.shape == c.shape == (2, 3)
    (h, c), y = cell(cell.init(key, 2), (h, c), jnp.ones((2, 2)))
    np.testing.assert_array_equal(h, y)
