"""Your own cell: a layer-normalised LSTM in a few lines, used everywhere.

A cell is any object with ``init(key, input_dim)``, ``initial_carry(batch_shape)``
and ``cell(params, carry, x, *, key=None, training=False) -> (carry, y)``.
It then works under `jaxrnn.rnn`, in `StackedCells`, `RNN` and
`Bidirectional`, with masks, reversal and stateful carries.

Run: python examples/custom_cell.py
"""

import dataclasses

import jax
import jax.numpy as jnp

import jaxrnn


def _layer_norm(z, scale, eps=1e-5):
    mean = z.mean(-1, keepdims=True)
    return scale * (z - mean) * jax.lax.rsqrt(z.var(-1, keepdims=True) + eps)


@dataclasses.dataclass(frozen=True)
class LayerNormLSTMCell:
    """LSTM with layer normalisation on the gate pre-activations and the cell
    state (Ba et al., 2016). Keras gate order i, f, c, o."""

    units: int

    @property
    def output_size(self):
        return self.units

    def init(self, key, input_dim):
        k1, k2 = jax.random.split(key)
        h = self.units
        return {
            "kernel": jax.nn.initializers.glorot_uniform()(
                k1, (input_dim, 4 * h)
            ),
            "recurrent_kernel": jax.nn.initializers.orthogonal()(
                k2, (h, 4 * h)
            ),
            "bias": jnp.zeros(4 * h).at[h : 2 * h].set(1.0),
            "gate_scale": jnp.ones(4 * h),
            "cell_scale": jnp.ones(h),
        }

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        zeros = jnp.zeros((*batch_shape, self.units), dtype)
        return zeros, zeros

    def __call__(self, params, carry, x, *, key=None, training=False):
        h, c = carry
        z = (
            _layer_norm(
                x @ params["kernel"] + h @ params["recurrent_kernel"],
                params["gate_scale"],
            )
            + params["bias"]
        )
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(_layer_norm(c, params["cell_scale"]))
        return (h, c), h


def main():
    batch, steps, features = 4, 12, 3
    x = jax.random.normal(jax.random.key(0), (batch, steps, features))
    lengths = jnp.array([12, 9, 5, 1])

    cell = LayerNormLSTMCell(8)
    params = cell.init(jax.random.key(1), features)
    ys, (h, _c) = jax.jit(
        lambda p, x: jaxrnn.rnn(cell, p, x, seq_lengths=lengths)
    )(params, x)
    print("rnn with seq_lengths:      outputs", ys.shape, "final h", h.shape)

    stacked = jaxrnn.StackedCells([cell, jaxrnn.GRUCell(5)])
    stacked_params = stacked.init(jax.random.key(2), features)
    ys, carry = jaxrnn.rnn(stacked, stacked_params, x, go_backwards=True)
    print(
        "stacked with a GRUCell:    outputs", ys.shape, "carries", len(carry)
    )

    bi = jaxrnn.Bidirectional(jaxrnn.RNN(cell, return_sequences=True))
    bi_params = bi.init(jax.random.key(3), x.shape)
    print("Bidirectional(RNN(cell)):  outputs", bi(bi_params, x).shape)

    grads = jax.grad(lambda p: jnp.mean(jaxrnn.rnn(cell, p, x)[0] ** 2))(
        params
    )
    print("gradient norm:            ", float(global_norm(grads)))


def global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(tree)))


if __name__ == "__main__":
    main()
