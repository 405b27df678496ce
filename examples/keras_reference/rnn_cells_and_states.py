"""TensorFlow's RNN API, step by step (reference 002), rebuilt with jaxrnn.

The post walks through: a cell under ``RNN`` with an initial state, LSTM as
a cell or as a layer returning its states, a multi-layer RNN from a list of
cells, LSTM + BatchNormalization + LSTM + Dense run in training mode, and a
Bidirectional LSTM returning ``outputs, f_h, f_c, b_h, b_c``. It uses
batch_size = 3, seq_length = 5, input_dim = 7 throughout; the shapes it
describes ([batch_size, seq_length, hidden_dim] and so on) are printed with
those numbers.

Where the post's code differs from jaxrnn:
  - ``rnn.get_initial_state(inputs)`` is called before ``inputs`` exists in
    the post; here the inputs come first. jaxrnn's equivalent is
    ``cell.initial_carry((batch_size,))``: zeros, (h, c) for an LSTM cell.
  - ``rnn(inputs, initial_state)`` passes the state positionally; jaxrnn
    takes ``initial_state=`` by keyword.
  - ``name='encoder'``: jaxrnn layers have no names.
  - ``model(inputs, training=True)`` updates BatchNormalization's moving
    statistics in place; jaxrnn's ``model.apply(params, inputs,
    training=True)`` returns them in new params instead.

Run: python examples/keras_reference/rnn_cells_and_states.py
"""

import functools

import jax
import numpy as np

import jaxrnn
from jaxrnn import layers

batch_size = 3
seq_length = 5
input_dim = 7


def cell_and_initial_state(key, inputs):
    """A cell is one step; ``RNN`` runs it over the sequence."""
    hidden_dim = 4
    rnn_cell = jaxrnn.LSTMCell(hidden_dim)  # RNN cell
    rnn = jaxrnn.RNN(rnn_cell, return_sequences=True)  # RNN
    params = rnn.init(key, inputs.shape)
    initial_state = list(rnn_cell.initial_carry((batch_size,)))  # zeros [h, c]
    output = jax.jit(rnn)(params, inputs, initial_state=initial_state)
    last = jax.jit(jaxrnn.RNN(rnn_cell))(
        params, inputs, initial_state=initial_state
    )
    print("cell under RNN: RNN(LSTMCell(4), return_sequences=True)")
    print(
        "  initial_state [batch_size, hidden_dim] (h and c) ->",
        [s.shape for s in initial_state],
    )
    print(
        "  return_sequences=True  [batch_size, seq_length, hidden_dim] ->",
        output.shape,
    )
    print("  return_sequences=False [batch_size, hidden_dim] ->", last.shape)
    # "Other information can be put in the initial state": any (h, c).
    other = [np.ones((batch_size, hidden_dim), np.float32)] * 2
    changed = jax.jit(rnn)(params, inputs, initial_state=other)
    print(
        "  a non-zero initial_state changes the output:",
        not np.allclose(changed, output),
    )


def lstm_layer(key, inputs):
    """``RNN(LSTMCell(4))`` and ``LSTM(4)`` are the same model."""
    hidden_dim = 4
    cell = jaxrnn.LSTMCell(hidden_dim)
    rnn = jaxrnn.RNN(cell, return_sequences=True)
    params = rnn.init(key, inputs.shape)
    # The post's name='encoder' has no jaxrnn counterpart.
    encoder = jaxrnn.LSTM(4, return_sequences=True, return_state=True)
    output, h, c = jax.jit(encoder)(params, inputs)  # same params as the cell
    print(
        "LSTM(4, return_sequences=True, return_state=True) -> [output, h, c]",
        [output.shape, h.shape, c.shape],
    )
    print(
        "  RNN(LSTMCell(4)) gives the same output with the same params:",
        np.allclose(jax.jit(rnn)(params, inputs), output, atol=1e-6),
    )


def multi_layer(key, inputs):
    """Stacked cells: each cell's output is the next cell's input."""
    hidden_dim = 4
    cells = [jaxrnn.LSTMCell(hidden_dim), jaxrnn.LSTMCell(hidden_dim * 2)]
    rnn = jaxrnn.RNN(cells, return_sequences=True)
    params = rnn.init(key, inputs.shape)
    print(
        "multi-layer: RNN([LSTMCell(4), LSTMCell(8)], return_sequences=True)"
        " ->",
        jax.jit(rnn)(params, inputs).shape,
    )


def lstm_bn_lstm_dense(key, inputs):
    """LSTM + BN + LSTM + FC, run in training mode."""
    hidden_dim = 9
    output_size = 11
    lstm_layer1 = jaxrnn.RNN(
        jaxrnn.LSTMCell(hidden_dim), return_sequences=True
    )
    lstm_layer2 = jaxrnn.RNN(
        jaxrnn.LSTMCell(hidden_dim), return_sequences=True
    )
    model = layers.Sequential(
        [
            lstm_layer1,
            layers.BatchNormalization(),
            lstm_layer2,
            layers.Dense(output_size),
        ]
    )
    params = model.init(key, inputs.shape)
    train_step = jax.jit(functools.partial(model.apply, training=True))
    outputs, new_params = train_step(params, inputs)
    print("LSTM + BN + LSTM + FC, training=True ->", outputs.shape)
    print("  outputs[0, 0] =", np.asarray(outputs[0, 0]))
    print(
        "  BatchNormalization moving_mean after one training call:",
        np.asarray(new_params[1]["moving_mean"]),
    )


def bidirectional(key, inputs):
    """Bidirectional LSTM: output, f_h, f_c, b_h, b_c (SimpleRNN: f_h, b_h)."""
    hidden_dim = 2
    rnn = jaxrnn.Bidirectional(
        jaxrnn.LSTM(hidden_dim, return_sequences=True, return_state=True)
    )
    params = rnn.init(key, inputs.shape)
    outputs, f_h, f_c, b_h, b_c = jax.jit(rnn)(params, inputs)
    print("Bidirectional(LSTM(2, return_sequences=True, return_state=True))")
    print(
        "  outputs, f_h, f_c, b_h, b_c ->",
        [a.shape for a in (outputs, f_h, f_c, b_h, b_c)],
    )
    simple = jaxrnn.Bidirectional(
        jaxrnn.SimpleRNN(hidden_dim, return_sequences=True, return_state=True)
    )
    outputs, f_h, b_h = jax.jit(simple)(simple.init(key, inputs.shape), inputs)
    print(
        "Bidirectional(SimpleRNN(2, return_sequences=True, return_state=True))"
    )
    print(
        "  SimpleRNN: output, f_h, b_h ->",
        [a.shape for a in (outputs, f_h, b_h)],
    )


def main():
    np.set_printoptions(precision=4, suppress=True)
    # Stands for embedded data, as in the post.
    inputs = np.random.default_rng(0).standard_normal(
        (batch_size, seq_length, input_dim), np.float32
    )
    keys = jax.random.split(jax.random.key(0), 5)
    cell_and_initial_state(keys[0], inputs)
    lstm_layer(keys[1], inputs)
    multi_layer(keys[2], inputs)
    lstm_bn_lstm_dense(keys[3], inputs)
    bidirectional(keys[4], inputs)


if __name__ == "__main__":
    main()
