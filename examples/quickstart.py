"""jaxrnn quickstart: Keras' LSTM, GRU and SimpleRNN as pure JAX functions.

Builds the three layers, runs them on a padded batch with a mask, and prints
shapes and a few numbers. Run: python examples/quickstart.py
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn


def _head(values, n=4):
    return (
        np.array2string(
            np.asarray(values).reshape(-1)[:n],
            precision=4,
            suppress_small=True,
        )
        + " ..."
    )


def main():
    batch, steps, features = 3, 6, 4
    x = jax.random.normal(jax.random.key(0), (batch, steps, features))
    lengths = jnp.array([6, 4, 2])
    mask = jaxrnn.lengths_to_mask(lengths, steps)  # (B, T) bool, right padded
    print(f"inputs {x.shape}, lengths {lengths.tolist()}")
    print("mask\n", mask.astype(int))

    layers = {
        "LSTM(8, return_state=True)": jaxrnn.LSTM(8, return_state=True),
        "GRU(8, return_sequences=True)": jaxrnn.GRU(8, return_sequences=True),
        "SimpleRNN(8, go_backwards=True)": jaxrnn.SimpleRNN(
            8, go_backwards=True
        ),
        "Bidirectional(LSTM(8))": jaxrnn.Bidirectional(jaxrnn.LSTM(8)),
    }
    for i, (name, layer) in enumerate(layers.items()):
        params = layer.init(jax.random.key(i + 1), (None, steps, features))
        apply = jax.jit(lambda p, x, m, layer=layer: layer(p, x, mask=m))
        out = apply(params, x, mask)
        print(
            f"\n{name}: {layer.param_count((None, steps, features))} params, "
            f"output shape {layer.output_shape((None, steps, features))}"
        )
        if isinstance(out, list):
            for label, value in zip(["output", "h", "c"], out):
                print(
                    f"  {label:6s} {value.shape!s:10s} row 0: {_head(value[0])}"
                )
        else:
            print(f"  output {out.shape!s:10s} row 0: {_head(out[0])}")

    # The functional core: a cell, its params and rnn().
    cell = jaxrnn.LSTMCell(8)
    params = cell.init(jax.random.key(9), features)
    last, (h, _c) = jaxrnn.rnn(
        cell, params, x, seq_lengths=lengths, return_sequences=False
    )
    print(
        "\nrnn(LSTMCell) last output equals the final h:",
        bool(jnp.allclose(last, h)),
    )
    ys, _ = jaxrnn.rnn(cell, params, x, seq_lengths=lengths)
    print(
        "masked steps repeat the last valid output:",
        bool(jnp.allclose(ys[2, 2:], ys[2, 1])),
    )


if __name__ == "__main__":
    main()
