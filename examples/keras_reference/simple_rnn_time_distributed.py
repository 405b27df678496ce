"""SimpleRNN and TimeDistributed (reference 003, "RNN lecture part B"), with jaxrnn.

The post builds a ``keras.Model`` subclass, ``RNNLayer``: ``SimpleRNN(128,
activation='tanh', return_sequences=True)`` followed by
``TimeDistributed(Dense(39, activation='softmax'))``, then explains:
  1. SimpleRNN: ``return_sequences=False`` gives only the last output,
     2-D ([Batch_size, output_dim]), True gives every step, 3-D;
     ``return_state=True`` also returns the hidden state, (output, hidden).
     The last output alone is "many to one", every step "many to many".
  2. TimeDistributed applies the same Dense at every step; but Dense already
     works on the last axis of a 3-D tensor, so a plain Dense does the same.

The post gives no input size; this script uses 13 features per step (say, 13
MFCCs per frame for 39 phoneme classes), a batch of 4 and 20 steps.

Where the post's code differs from jaxrnn:
  - Model subclassing: jaxrnn has no ``keras.Model``; `RNNLayer` below is a
    plain class holding its layers, with ``init`` for the params and
    ``__call__`` for the forward pass.
  - SimpleRNN's ``kernel_regularizer``, ``recurrent_regularizer``,
    ``bias_regularizer``, ``activity_regularizer`` and the three
    ``*_constraint`` arguments do not exist in jaxrnn: add a penalty on the
    params to the loss, or project the params after each update.

Run: python examples/keras_reference/simple_rnn_time_distributed.py
"""

import dataclasses

import jax
import numpy as np

import jaxrnn
from jaxrnn import layers

BATCH, STEPS, FEATURES = 4, 20, 13


class RNNLayer:
    """The post's model: SimpleRNN over the sequence, then a softmax per step."""

    def __init__(self, num_hidden=128, num_class=39):
        self.RNN1 = jaxrnn.SimpleRNN(
            num_hidden, activation="tanh", return_sequences=True
        )
        self.out = layers.Dense(num_class, activation="softmax")
        self.out = layers.TimeDistributed(self.out)

    def init(self, key, input_shape):
        rnn_key, out_key = jax.random.split(key)
        return {
            "RNN1": self.RNN1.init(rnn_key, input_shape),
            "out": self.out.init(out_key, self.RNN1.output_shape(input_shape)),
        }

    def output_shape(self, input_shape):
        return self.out.output_shape(self.RNN1.output_shape(input_shape))

    def __call__(self, params, x):
        x = self.RNN1(params["RNN1"], x)
        out = self.out(params["out"], x)
        return out


def subclassed_model(key, x):
    """The post's model on a batch: one 39-way softmax per step."""
    model = RNNLayer()
    params = model.init(key, x.shape)
    out = jax.jit(model)(params, x)
    print(
        "RNNLayer: SimpleRNN(128, return_sequences=True) -> "
        "TimeDistributed(Dense(39, softmax))"
    )
    print(
        f"  symbolic {(None, None, FEATURES)} ->",
        model.output_shape((None, None, FEATURES)),
    )
    print(f"  concrete {x.shape} ->", out.shape)
    print(
        "  softmax: each step sums to 1:",
        np.allclose(out.sum(-1), 1, atol=1e-5),
    )


def simple_rnn_outputs(key, x):
    """return_sequences and return_state, on the same params."""
    # The post's signature with its defaults, less the regularizers and
    # constraints (see the module docstring).
    layer = jaxrnn.SimpleRNN(
        128,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
    )
    params = layer.init(key, x.shape)

    def run(**options):
        return jax.jit(dataclasses.replace(layer, **options))(params, x)

    print("SimpleRNN(128)")
    print("  return_sequences=False [Batch_size, output_dim] ->", run().shape)
    print(
        "  return_sequences=True  [Batch_size, time, output_dim] ->",
        run(return_sequences=True).shape,
    )
    output, hidden = run(return_state=True)
    print(
        "  return_state=True      (output, hidden) ->",
        (output.shape, hidden.shape),
    )
    print(
        "  the output is the last hidden state:", np.allclose(output, hidden)
    )


def many_to_one_and_many_to_many(key, x):
    """Dense after the last output, after every output, with or without
    TimeDistributed."""
    rnn_key, dense_key = jax.random.split(key)
    dense = layers.Dense(39, activation="softmax")
    dense_params = dense.init(dense_key, (None, 128))
    rnn = jaxrnn.SimpleRNN(128, return_sequences=True)
    rnn_params = rnn.init(rnn_key, x.shape)
    sequence = jax.jit(rnn)(rnn_params, x)  # (B, T, 128)

    last = jax.jit(jaxrnn.SimpleRNN(128))(rnn_params, x)  # (B, 128)
    many_to_one = jax.jit(dense)(dense_params, last)
    print("many to one:  SimpleRNN(128) -> Dense(39) ->", many_to_one.shape)
    per_step = jax.jit(layers.TimeDistributed(dense))(dense_params, sequence)
    print(
        "many to many, TimeDistributed: SimpleRNN(128, return_sequences=True)"
        " -> TimeDistributed(Dense(39)) ->",
        per_step.shape,
    )
    broadcast = jax.jit(dense)(dense_params, sequence)
    print(
        "many to many, plain Dense: SimpleRNN(128, return_sequences=True)"
        " -> Dense(39) ->",
        broadcast.shape,
    )
    print(
        "  Dense alone equals TimeDistributed(Dense) with the same params:",
        np.allclose(broadcast, per_step, atol=1e-6),
    )


def main():
    x = np.random.default_rng(0).standard_normal(
        (BATCH, STEPS, FEATURES), np.float32
    )
    keys = jax.random.split(jax.random.key(0), 3)
    subclassed_model(keys[0], x)
    simple_rnn_outputs(keys[1], x)
    many_to_one_and_many_to_many(keys[2], x)


if __name__ == "__main__":
    main()
