"""A user's own cell (examples/custom_cell.py) works wherever built-ins do."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from integration.scripts import EXAMPLES, load_script

import jaxrnn

custom_cell = load_script(EXAMPLES / "custom_cell.py", "custom_cell")


@pytest.fixture
def setup(key):
    cell = custom_cell.LayerNormLSTMCell(5)
    params = cell.init(key, 3)
    x = jax.random.normal(jax.random.key(11), (3, 9, 3))
    mask = jnp.array(
        [[1] * 9, [1] * 6 + [0] * 3, [0, 0] + [1] * 5 + [0, 0]], bool
    )
    return cell, params, x, mask


def _manual(cell, params, x, mask):
    """The reference: a plain Python loop with Keras' masking rule."""
    carry = cell.initial_carry((x.shape[0],))
    y_prev = jnp.zeros((x.shape[0], 5))
    ys = []
    for t in range(x.shape[1]):
        new_carry, y = cell(params, carry, x[:, t])
        keep = mask[:, t][:, None]
        carry = jax.tree.map(
            lambda n, o: jnp.where(keep, n, o), new_carry, carry
        )
        y_prev = jnp.where(keep, y, y_prev)
        ys.append(y_prev)
    return jnp.stack(ys, 1), carry


def test_rnn_with_mask_equals_manual_loop(setup):
    cell, params, x, mask = setup
    ys, carry = jax.jit(lambda p, x: jaxrnn.rnn(cell, p, x, mask=mask))(
        params, x
    )
    want_ys, want_carry = _manual(cell, params, x, mask)
    np.testing.assert_allclose(ys, want_ys, atol=1e-6)
    for a, b in zip(carry, want_carry):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_unroll_and_go_backwards(setup):
    cell, params, x, mask = setup
    a = jaxrnn.rnn(cell, params, x, mask=mask, go_backwards=True)
    b = jaxrnn.rnn(cell, params, x[:, ::-1], mask=mask[:, ::-1], unroll=True)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(u, v, atol=1e-6)


def test_stacked_with_builtin(setup):
    cell, _, x, mask = setup
    stacked = jaxrnn.StackedCells([cell, jaxrnn.LSTMCell(4)])
    params = stacked.init(jax.random.key(0), 3)
    ys, carry = jaxrnn.rnn(stacked, params, x, mask=mask)
    assert ys.shape == (3, 9, 4) and len(carry) == 2
    # Same as running the layers one after the other.
    ys0, _ = jaxrnn.rnn(cell, params[0], x, mask=mask)
    ys1, _ = jaxrnn.rnn(jaxrnn.LSTMCell(4), params[1], ys0, mask=mask)
    np.testing.assert_allclose(ys, ys1, atol=1e-6)


def test_layers_and_bidirectional(setup):
    cell, params, x, mask = setup
    layer = jaxrnn.RNN(cell, return_sequences=True, return_state=True)
    _out, _h, _c = layer(params, x, mask=mask)
    assert layer.output_shape((None, 9, 3)) == [
        (None, 9, 5),
        (None, 5),
        (None, 5),
    ]
    assert layer.param_count((None, 9, 3)) == 3 * 20 + 5 * 20 + 20 + 20 + 5
    bi = jaxrnn.Bidirectional(jaxrnn.RNN(cell, return_sequences=True))
    assert bi(bi.init(jax.random.key(1), x.shape), x, mask=mask).shape == (
        3,
        9,
        10,
    )


def test_vmap_and_grad(setup):
    cell, params, x, mask = setup
    batched, _ = jaxrnn.rnn(cell, params, x, mask=mask)
    mapped, _ = jax.vmap(lambda x, m: jaxrnn.rnn(cell, params, x, mask=m))(
        x, mask
    )
    np.testing.assert_allclose(batched, mapped, atol=1e-6)
    grads = jax.grad(
        lambda p: jnp.sum(jaxrnn.rnn(cell, p, x, mask=mask, remat=True)[0])
    )(params)
    assert set(grads) == set(params)


def test_custom_cell_gets_the_same_key_every_step(key):
    """A custom cell with dropout draws its mask from the key rnn passes; the
    same key at every step means one mask per sequence."""
    seen = []

    class Recorder(custom_cell.LayerNormLSTMCell):
        def __call__(self, params, carry, x, *, key=None, training=False):
            seen.append(key)
            return super().__call__(params, carry, x)

    cell = Recorder(2)
    jaxrnn.rnn(
        cell,
        cell.init(key, 1),
        jnp.ones((1, 3, 1)),
        key=key,
        training=True,
        unroll=True,
    )
    # (One more call than steps: rnn traces a step once to learn the output shape.)
    assert len(seen) >= 3 and all(k is key for k in seen)


class _MinimalCell:
    """The least a cell needs: init, initial_carry(batch_shape) without a
    dtype argument, and __call__; no output_size."""

    units = 3

    def init(self, key, input_dim):
        return {"kernel": jax.random.normal(key, (input_dim, self.units))}

    def initial_carry(self, batch_shape=()):
        return jnp.zeros((*batch_shape, self.units))

    def __call__(self, params, carry, x, **_):
        h = jnp.tanh(x @ params["kernel"] + carry)
        return h, h


def test_minimal_cell_stacks_and_says_what_a_layer_needs():
    x = jax.random.normal(jax.random.key(1), (2, 5, 4))
    stacked = jaxrnn.StackedCells([jaxrnn.LSTMCell(4), _MinimalCell()])
    params = stacked.init(jax.random.key(0), 4)
    ys, carry = jaxrnn.rnn(stacked, params, x)  # initial_carry(batch_shape)
    assert ys.shape == (2, 5, 3) and len(carry) == 2
    with pytest.raises(
        TypeError,
        match=r"RNN.output_shape needs the cell's "
        r"`output_size`.*_MinimalCell has None",
    ):
        jaxrnn.RNN(_MinimalCell()).output_shape((None, 5, 4))
