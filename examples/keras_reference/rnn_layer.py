"""The ``tf.keras.layers.RNN`` reference post ("RNN", reference 000), with jaxrnn.

The post summarises Keras' ``RNN`` layer: its arguments, input and output
shapes, masking, and two examples that print ``(None, 4)`` (one `LSTMCell`)
and ``(None, 64)`` (stacked cells) for a symbolic ``tf.keras.Input((None, 5))``.

jaxrnn has no symbolic tensors: ``layer.output_shape((None, None, 5))`` is
what Keras prints for ``Input((None, 5))`` (batch and time unknown), and each
example also runs on a concrete batch. After the examples, every argument the
post lists is shown on a small batch.

Where the post's API differs from jaxrnn's:
  - a Keras cell is ``call(x, states) -> (output, new_states)`` with
    ``state_size``, ``output_size`` and ``get_initial_state``; a jaxrnn cell is
    ``cell(params, carry, x) -> (new_carry, output)`` with ``init(key, D)``
    and ``initial_carry(batch_shape)`` (zeros, as Keras').
  - ``**kwargs`` such as ``name=`` do not exist: a jaxrnn layer has no name.
  - ``time_major`` is TF 2's argument (Keras 3 dropped it); jaxrnn keeps it.
  - ``stateful=True`` keeps no hidden variable: the layer returns its final
    states and the caller passes them back as ``initial_state``.

Run: python examples/keras_reference/rnn_layer.py
"""

import jax
import numpy as np

import jaxrnn
from jaxrnn import layers


def single_cell(cell, params, x):
    """``RNN(LSTMCell(4))`` on ``Input((None, 5))``: the post prints (None, 4)."""
    layer = jaxrnn.RNN(cell)
    print("single cell: RNN(LSTMCell(4)) on Input((None, 5))")
    print("  symbolic (None, None, 5) ->", layer.output_shape((None, None, 5)))
    # jit: one compilation for the whole call instead of one per operation.
    print(f"  concrete {x.shape} ->", jax.jit(layer)(params, x).shape)


def stacked_cells(key, x):
    """``RNN([LSTMCell(32), LSTMCell(64)])``: the post prints (None, 64)."""
    layer = jaxrnn.RNN([jaxrnn.LSTMCell(32), jaxrnn.LSTMCell(64)])
    params = layer.init(key, (None, None, 5))
    print("stacked RNN: RNN([LSTMCell(32), LSTMCell(64)]) on Input((None, 5))")
    print("  symbolic (None, None, 5) ->", layer.output_shape((None, None, 5)))
    print(f"  concrete {x.shape} ->", jax.jit(layer)(params, x).shape)


def arguments(cell, params, x):
    """One line per argument of the post's signature, on the same cell."""

    def run(inputs, initial_state=None, mask=None, **options):
        layer = jax.jit(jaxrnn.RNN(cell, **options))
        return layer(params, inputs, initial_state=initial_state, mask=mask)

    def same(a, b):
        return np.allclose(a, b, atol=1e-6)

    default = jaxrnn.RNN(cell)
    print(
        "arguments (defaults as the post's signature: "
        f"return_sequences={default.return_sequences}, "
        f"return_state={default.return_state}, "
        f"go_backwards={default.go_backwards}, stateful={default.stateful}, "
        f"unroll={default.unroll}, time_major={default.time_major})"
    )
    last = run(x)

    print(
        "  return_sequences=True  [batch_size, timesteps, output_size] ->",
        run(x, return_sequences=True).shape,
    )
    print("  return_sequences=False [batch_size, output_size] ->", last.shape)

    output, h, c = run(x, return_state=True)
    print(
        "  return_state=True      [output, h, c] ->",
        [output.shape, h.shape, c.shape],
        "(LSTM's state is [h, c], each [batch_size, state_size])",
    )

    print(
        "  go_backwards=True      equals reading the reversed input:",
        same(run(x, go_backwards=True), run(x[:, ::-1])),
    )

    # Keras' stateful layer carries its last state into the next batch; here
    # the caller does it, and two halves give the same result as one call.
    half = x.shape[1] // 2
    _, *state = run(x[:, :half], stateful=True)
    second, *_ = run(x[:, half:], initial_state=state, stateful=True)
    print(
        "  stateful=True          two halves equal one call:",
        same(second, last),
    )

    print(
        "  unroll=True            same numbers as the scan:",
        same(run(x, unroll=True), last),
    )

    print(
        "  time_major=True        (timesteps, batch, ...) ->",
        run(x.swapaxes(0, 1), return_sequences=True, time_major=True).shape,
    )

    lengths = np.array([x.shape[1], 2] + [x.shape[1]] * (x.shape[0] - 2))
    mask = np.arange(x.shape[1]) < lengths[:, None]  # (B, T), row 1 padded
    zeroed = run(
        x, mask=mask, return_sequences=True, zero_output_for_mask=True
    )
    print(
        "  zero_output_for_mask   masked steps of row 1 are zeros:",
        bool(np.all(zeroed[1, 2:] == 0)),
    )


def masking(key, cell, params):
    """The post's masking rule: ``Embedding(mask_zero=True)`` before the RNN."""
    embedding = layers.Embedding(100, 5, mask_zero=True)
    model = layers.Sequential([embedding, jaxrnn.RNN(cell)])
    model_params = [embedding.init(key), params]
    ids = np.array([[7, 3, 9, 0, 0], [4, 8, 0, 0, 0]])  # 0 pads on the right
    run = jax.jit(model)
    padded = run(model_params, ids)
    unpadded = run(model_params, ids[:1, :3])
    print("masking: Embedding(100, 5, mask_zero=True) -> RNN(LSTMCell(4))")
    print(
        f"  ids {ids.shape} -> {padded.shape}; padding ignored:",
        np.allclose(padded[0], unpadded[0], atol=1e-6),
    )


def main():
    x = np.random.default_rng(0).standard_normal(
        (3, 6, 5), np.float32
    )  # (B, T, D)
    keys = jax.random.split(jax.random.key(0), 3)
    cell = jaxrnn.LSTMCell(4)
    params = cell.init(keys[0], 5)  # RNN(cell)'s params: shared below
    single_cell(cell, params, x)
    stacked_cells(keys[1], x)
    arguments(cell, params, x)
    masking(keys[2], cell, params)


if __name__ == "__main__":
    main()
