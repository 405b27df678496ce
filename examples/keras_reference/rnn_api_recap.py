"""The "RNN" post again (reference 001, a plain-text copy of 000), with jaxrnn.

The post is the one ``rnn_layer.py`` follows (the argument tour lives there):
a summary of ``tf.keras.layers.RNN`` and two examples, a single
``LSTMCell(4)`` printing ``(None, 4)`` and stacked
``[LSTMCell(32), LSTMCell(64)]`` printing ``(None, 64)`` for
``tf.keras.Input((None, 5))``. This script rebuilds the two examples and
checks the post's "Input shape" and "Output shape" paragraphs.

jaxrnn has no symbolic ``Input``: ``layer.output_shape((None, None, 5))``
gives the shape Keras prints, and each example also runs on a concrete batch.

Run: python examples/keras_reference/rnn_api_recap.py
"""

import jax
import numpy as np

import jaxrnn

SYMBOLIC = (None, None, 5)  # tf.keras.Input((None, 5)): batch, time unknown


def show(label, layer, params, x):
    """Prints the symbolic and the concrete output shapes of `layer`."""
    print(label)
    print(f"  symbolic {SYMBOLIC} ->", layer.output_shape(SYMBOLIC))
    out = jax.jit(layer)(params, x)  # one compilation, not one per operation
    shapes = [o.shape for o in out] if isinstance(out, list) else out.shape
    print(f"  concrete {x.shape} ->", shapes)


def main():
    keys = jax.random.split(jax.random.key(0))
    x = np.random.default_rng(0).standard_normal(
        (2, 7, 5), np.float32
    )  # (B, T, D)

    # Example 1, single cell: the post prints (None, 4).
    cell = jaxrnn.LSTMCell(4)
    params = cell.init(keys[0], 5)  # RNN(cell)'s params are the cell's
    show(
        "single cell: RNN(LSTMCell(4)) on Input((None, 5))",
        jaxrnn.RNN(cell),
        params,
        x,
    )

    # Example 2, stacked RNN: the post prints (None, 64).
    stacked = jaxrnn.RNN([jaxrnn.LSTMCell(32), jaxrnn.LSTMCell(64)])
    show(
        "stacked RNN: RNN([LSTMCell(32), LSTMCell(64)]) on Input((None, 5))",
        stacked,
        stacked.init(keys[1], SYMBOLIC),
        x,
    )

    # "Output shape": with return_state a list, the output then the last
    # state [batch_size, state_size] (an LSTM cell's state is [h, c]).
    show(
        "return_state=True: [output, h, c]",
        jaxrnn.RNN(cell, return_state=True),
        params,
        x,
    )

    # "Output shape": with return_sequences [batch_size, timesteps,
    # output_size].
    show(
        "return_sequences=True: [batch_size, timesteps, output_size]",
        jaxrnn.RNN(cell, return_sequences=True),
        params,
        x,
    )

    # "Input shape": [timesteps, batch_size, ...] with time_major (the
    # outputs too), else [batch_size, timesteps, ...].
    show(
        "time_major=True: [timesteps, batch_size, output_size]",
        jaxrnn.RNN(cell, return_sequences=True, time_major=True),
        params,
        x.swapaxes(0, 1),
    )


if __name__ == "__main__":
    main()
