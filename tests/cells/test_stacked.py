"""StackedCells: list params, tuple carry, last output, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn


def test_structure(key):
    cell = jaxrnn.StackedCells([jaxrnn.LSTMCell(3), jaxrnn.GRUCell(4)])
    params = cell.init(key, 2)
    assert isinstance(params, list) and len(params) == 2
    assert params[1]["kernel"].shape == (3, 12)
    carry = cell.initial_carry((5,))
    assert isinstance(carry, tuple) and len(carry) == 2
    assert cell.state_size == ([3, 3], 4)
    assert cell.output_size == 4


def test_step_equals_cells_in_sequence(key):
    first, second = jaxrnn.LSTMCell(3), jaxrnn.SimpleRNNCell(4)
    cell = jaxrnn.StackedCells([first, second])
    params = cell.init(key, 2)
    x = jax.random.normal(key, (5, 2))
    carry, y = cell(params, cell.initial_carry((5,)), x)
    c0, y0 = first(params[0], first.initial_carry((5,)), x)
    _c1, y1 = second(params[1], second.initial_carry((5,)), y0)
    np.testing.assert_allclose(y, y1, atol=1e-6)
    np.testing.assert_allclose(carry[0][1], c0[1], atol=1e-6)


def test_hashable(key):
    a = jaxrnn.StackedCells([jaxrnn.LSTMCell(3), jaxrnn.GRUCell(4)])
    b = jaxrnn.StackedCells((jaxrnn.LSTMCell(3), jaxrnn.GRUCell(4)))
    assert a == b and hash(a) == hash(b)


def test_empty_list_rejected():
    with pytest.raises(ValueError, match="at least one cell"):
        jaxrnn.StackedCells([])


def test_non_cells_rejected():
    with pytest.raises(TypeError, match=r"cells\[1\]"):
        jaxrnn.StackedCells([jaxrnn.LSTMCell(3), "gru"])


def test_wrong_params_length(key):
    cell = jaxrnn.StackedCells([jaxrnn.LSTMCell(3), jaxrnn.GRUCell(4)])
    params = cell.init(key, 2)
    with pytest.raises(ValueError, match="list of 2 entries"):
        cell(params[:1], cell.initial_carry(), jnp.ones(2))
