"""A small optax loop fits a toy task through rnn (jit, grad, optax)."""

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxrnn

# Trains for a few hundred steps (25 s together): with the slow set, which
# CI runs after the default suite.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "layer",
    [
        jaxrnn.LSTM(16),
        jaxrnn.GRU(16),
        jaxrnn.Bidirectional(jaxrnn.SimpleRNN(16)),
    ],
    ids=["lstm", "gru", "bidirectional_simple"],
)
def test_loss_falls_tenfold(layer):
    """Regress the masked running mean of a noisy sequence's first feature."""
    key_x, key_len, key_init, key_head = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(key_x, (64, 12, 2))
    lengths = jax.random.randint(key_len, (64,), 3, 13)
    mask = jaxrnn.lengths_to_mask(lengths, 12)
    target = jnp.sum(jnp.where(mask, x[..., 0], 0), 1) / lengths.astype(
        jnp.float32
    )

    params = {
        "rnn": layer.init(key_init, x.shape),
        "head": jax.random.normal(key_head, (layer.output_shape(x.shape)[-1],))
        * 0.1,
    }

    def loss_fn(params):
        features = layer(params["rnn"], x, mask=mask)
        return jnp.mean((features @ params["head"] - target) ** 2)

    optimizer = optax.adam(1e-2)

    @jax.jit
    def train_step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    first = float(loss_fn(params))
    # optax's Adam mixes int32 step counts with floats, which the suite's
    # strict promotion rejects; jaxrnn itself runs under strict promotion.
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(300):
            params, opt_state, _loss = train_step(params, opt_state)
    assert float(loss_fn(params)) < first / 10
