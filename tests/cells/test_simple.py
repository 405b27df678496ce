"""SimpleRNNCell specifics."""

import jax.numpy as jnp
import numpy as np

import jaxrnn


def test_step_is_the_elman_formula(key):
    cell = jaxrnn.SimpleRNNCell(3)
    params = cell.init(key, 2)
    h = jnp.array([0.1, -0.2, 0.3])
    x = jnp.array([1.0, -1.0])
    new_h, y = cell(params, h, x)
    want = jnp.tanh(
        x @ params["kernel"] + h @ params["recurrent_kernel"] + params["bias"]
    )
    np.testing.assert_allclose(new_h, want, atol=1e-6)
    np.testing.assert_array_equal(new_h, y)


def test_linear_activation_by_none(key):
    cell = jaxrnn.SimpleRNNCell(3, activation=None)
    params = cell.init(key, 2)
    _, y = cell(params, cell.initial_carry(), jnp.full((2,), 10.0))
    assert float(jnp.abs(y).max()) > 1.0
