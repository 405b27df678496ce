"""The Keras RNN guide, part 1 (reference 004, "RNN with Keras (1)"), with jaxrnn.

The post follows TensorFlow's "Recurrent Neural Networks with Keras" guide:
two ``Sequential`` models whose ``summary()`` it prints,

  Embedding(1000, 64) -> LSTM(128) -> Dense(10, softmax):
    64000 / 98816 / 1290 params, total 164,106;
  Embedding(1000, 64) -> GRU(256, return_sequences=True) -> SimpleRNN(128)
    -> Dense(10, softmax): 64000 / 247296 / 49280 / 1290, total 361,866.

`jaxrnn.layers.summary` prints the same table. The models carry the post's
names; layer names differ by Keras' session counters (the post's
``embedding_7`` is our ``embedding``).

Where the post's code differs from jaxrnn:
  - ``model = Sequential(); model.add(layer)``: a jaxrnn `Sequential` is
    immutable and takes its list of layers at once (there is no ``add``).
  - ``model.summary()`` is ``layers.summary(model, input_shape)``: jaxrnn
    builds nothing until asked, so the summary needs the input shape
    (None, None) for ids of any batch and length.
  - the set-up cell prints TensorFlow's version and eager mode; JAX runs
    eagerly unless a function is jitted, so there is no mode to print.

Run: python examples/keras_reference/keras_rnn_guide.py
"""

import jax
import numpy as np

from jaxrnn import layers

TOKENS = (None, None)  # integer ids: any batch, any length


def run_on_a_batch(model, key, label):
    """Builds params, prints the summary, and runs a concrete batch of ids."""
    layers.summary(model, TOKENS)
    params = model.init(key, TOKENS)
    ids = np.random.default_rng(0).integers(0, 1000, (2, 12))  # (B, T) ids
    print(
        f"{label}: ids {ids.shape} -> layer outputs",
        model.output_shapes(ids.shape),
    )
    probabilities = jax.jit(model)(params, ids)  # one compilation
    print(
        f"{label}: output {probabilities.shape}, softmax rows sum to",
        np.asarray(probabilities.sum(-1)).round(4).tolist(),
    )
    print()


def main():
    key_lstm, key_gru = jax.random.split(jax.random.key(0))

    # Embed 1000 words in 64 dimensions, read them with LSTM(128) and
    # classify in 10 classes with a softmax.
    model = layers.Sequential(
        [
            layers.Embedding(input_dim=1000, output_dim=64),
            layers.LSTM(128),
            layers.Dense(10, activation="softmax"),
        ],
        name="sequential_4",
    )
    run_on_a_batch(model, key_lstm, "Embedding -> LSTM -> Dense")

    # The GRU's output is (batch_size, timesteps, 256), the SimpleRNN's
    # (batch_size, 128).
    model = layers.Sequential(
        [
            layers.Embedding(input_dim=1000, output_dim=64),
            layers.GRU(256, return_sequences=True),
            layers.SimpleRNN(128, return_sequences=False),
            layers.Dense(10, activation="softmax"),
        ],
        name="sequential_6",
    )
    run_on_a_batch(model, key_gru, "Embedding -> GRU -> SimpleRNN -> Dense")


if __name__ == "__main__":
    main()
