"""`RNN` over ConvLSTM cells, alone or stacked, equals the ConvLSTM layers.

Keras 3 has no public ConvLSTM cell (``keras.layers`` exports only the
ConvLSTM1D/2D/3D layers), so the reference is jaxrnn's own ConvLSTM layer,
whose parity with Keras is tests/layers/test_conv_lstm_layers.py's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras_helpers import param_shapes_for, random_params_for

import jaxrnn
from jaxrnn import RNN, ConvLSTM1DCell, ConvLSTM2DCell, StackedCells
from jaxrnn.layers import Bidirectional, ConvLSTM1D, ConvLSTM2D

B, T = 2, 4
FRAMES = {1: (7, 2), 2: (6, 5, 2)}
CELLS = {1: (ConvLSTM1DCell, ConvLSTM1D), 2: (ConvLSTM2DCell, ConvLSTM2D)}
FLAGS = [
    {},
    {"return_sequences": True, "return_state": True},
    {"return_sequences": True, "go_backwards": True},
    {"return_state": True, "go_backwards": True, "zero_output_for_mask": True},
    {"return_sequences": True, "time_major": True},
]


def _inputs(rank, seed=0, frame=None):
    frame = frame or FRAMES[rank]
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal((B, T, *frame)), jnp.float32)


def _mask():
    mask = np.ones((B, T), bool)
    mask[0, 1] = mask[1, 0] = mask[1, 3] = False
    return jnp.asarray(mask)


def _assert_trees_close(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(f) or "none")
@pytest.mark.parametrize("rank", [1, 2])
def test_rnn_of_a_conv_lstm_cell_equals_the_layer(rank, flags):
    cell_type, layer_type = CELLS[rank]
    settings = {"filters": 3, "kernel_size": 3, "padding": "same"}
    layer = layer_type(**settings, **flags)
    rnn = RNN(cell_type(**settings), **flags)
    x, mask = _inputs(rank), _mask()
    if flags.get("time_major"):
        x, mask = x.swapaxes(0, 1), mask.T
    params = random_params_for(layer, x.shape)
    assert param_shapes_for(rnn, x.shape) == param_shapes_for(layer, x.shape)
    shape = (None, *x.shape[1:])
    assert rnn.output_shape(shape) == layer.output_shape(shape)
    assert rnn.param_count(shape) == layer.param_count(shape)
    run = jax.jit(lambda p, x, m: (rnn(p, x, mask=m), layer(p, x, mask=m)))
    got, want = run(params, x, mask)
    _assert_trees_close(got, want)
    assert rnn.compute_mask(x, mask) is layer.compute_mask(x, mask)


def test_unbatched_frames_and_initial_state():
    settings = {"filters": 2, "kernel_size": 3}  # 'valid': S' = S - 2
    layer = ConvLSTM2D(**settings, return_state=True)
    rnn = RNN(ConvLSTM2DCell(**settings), return_state=True)
    x = _inputs(2)
    params = random_params_for(layer, x.shape)
    rng = np.random.default_rng(3)
    state = [jnp.asarray(rng.standard_normal((4, 3, 2)), jnp.float32)] * 2

    @jax.jit
    def run(p, x):
        return rnn(p, x[1], initial_state=state), layer(
            p, x[1], initial_state=state
        )

    got, want = run(params, x)
    _assert_trees_close(got, want)
    assert got[1].shape == (4, 3, 2)


def test_dropout_draws_the_layers_masks(key):
    settings = {"filters": 2, "kernel_size": 2, "dropout": 0.3}
    settings["recurrent_dropout"] = 0.2
    layer = ConvLSTM1D(**settings, return_sequences=True)
    rnn = RNN(ConvLSTM1DCell(**settings), return_sequences=True)
    x = _inputs(1)
    params = random_params_for(layer, x.shape)
    run = jax.jit(
        lambda p, x, k: (
            rnn(p, x, key=k, training=True),
            layer(p, x, key=k, training=True),
        )
    )
    got, want = run(params, x, key)
    _assert_trees_close(got, want)


def test_bidirectional_rnn_of_a_cell_equals_bidirectional_layer():
    settings = {"filters": 2, "kernel_size": 3, "padding": "same"}
    ours = Bidirectional(
        RNN(ConvLSTM1DCell(**settings), return_sequences=True)
    )
    reference = Bidirectional(ConvLSTM1D(**settings, return_sequences=True))
    x = _inputs(1)
    params = random_params_for(reference, x.shape)
    run = jax.jit(lambda p, x: (ours(p, x), reference(p, x)))
    got, want = run(params, x)
    _assert_trees_close(got, want)


# A stack whose first cell strides, so the second reads smaller frames.
def _stack(rank, *, padding="valid"):
    cell_type, layer_type = CELLS[rank]
    first = {"filters": 3, "kernel_size": 2, "strides": 2, "padding": padding}
    second = {"filters": 2, "kernel_size": 3, "padding": "same"}
    cells = [cell_type(**first), cell_type(**second)]
    layers = (
        layer_type(**first, return_sequences=True, return_state=True),
        layer_type(**second, return_sequences=True, return_state=True),
    )
    return cells, layers


@pytest.mark.parametrize("as_list", [True, False], ids=["list", "stacked"])
@pytest.mark.parametrize("rank", [1, 2])
def test_stacked_conv_lstm_cells_equal_two_layers(rank, as_list):
    """Within each step the second cell reads the first's output, as the
    second layer reads the first's sequence; masked steps keep both."""
    cells, (first, second) = _stack(rank)
    stack = cells if as_list else StackedCells(cells)
    rnn = RNN(stack, return_sequences=True, return_state=True)
    x, mask = _inputs(rank), _mask()
    params = random_params_for(rnn, x.shape)
    assert len(params) == 2

    @jax.jit
    def run(p, x, m):
        ys, h1, c1 = first(p[0], x, mask=m)
        want = second(p[1], ys, mask=m)
        return rnn(p, x, mask=m), [want[0], h1, c1, *want[1:]]

    got, want = run(params, x, mask)
    _assert_trees_close(got, want)
    shape = (None, *x.shape[1:])
    assert rnn.output_shape(shape) == [(None, *a.shape[1:]) for a in want]
    between = (None, T, *want[1].shape[1:])  # the first layer's outputs
    assert rnn.param_count(shape) == first.param_count(
        shape
    ) + second.param_count(between)


def test_stacked_cells_run_backwards_and_time_major():
    cells, _ = _stack(2, padding="same")
    forward = RNN(cells, return_sequences=True)
    backward = RNN(cells, return_sequences=True, go_backwards=True)
    time_major = RNN(cells, return_sequences=True, time_major=True)
    x = _inputs(2)
    params = random_params_for(forward, x.shape)

    @jax.jit
    def run(p, x):
        return (
            backward(p, x),
            forward(p, jnp.flip(x, 1)),
            time_major(p, x.swapaxes(0, 1)).swapaxes(0, 1),
            forward(p, x),
        )

    ys_back, ys_flipped, ys_time_major, ys = run(params, x)
    _assert_trees_close(ys_back, ys_flipped)
    _assert_trees_close(ys_time_major, ys)


def test_output_shape_with_unknown_spatial_sizes():
    cells, _ = _stack(2)
    rnn = RNN(cells, return_sequences=True, return_state=True)
    assert rnn.output_shape((None, None, None, 9, 2)) == [
        (None, None, None, 4, 2),
        (None, None, 4, 3),
        (None, None, 4, 3),
        (None, None, 4, 2),
        (None, None, 4, 2),
    ]
    assert param_shapes_for(
        rnn, (None, None, None, None, 2)
    ) == param_shapes_for(rnn, (None, 4, 8, 9, 2))


@pytest.mark.parametrize(
    "input_shape,match",
    [
        ((5, 8, 8), r"rank 5 or 4.*got \(5, 8, 8\) \(rank 3\)"),
        ((None, 5, 8, 8, 8, 1), "rank 5 or 4"),
        ((None, 5, 8, 8, None), "channel count C"),
        ((None, 5, 2, 2, 1), "too small"),
    ],
)
@pytest.mark.parametrize("stacked", [False, True], ids=["cell", "stacked"])
def test_bad_input_shapes(input_shape, match, stacked, key):
    cell = ConvLSTM2DCell(2, 3)
    layer = RNN([cell, ConvLSTM2DCell(2, 1)] if stacked else cell)
    with pytest.raises(ValueError, match=match):
        layer.init(key, input_shape)


def test_inputs_of_the_wrong_rank_and_spatial_size():
    layer = RNN(ConvLSTM2DCell(2, 3, spatial_shape=(6, 6)))
    params = random_params_for(layer, (None, 4, 6, 6, 1))
    with pytest.raises(
        ValueError,
        match=r"`inputs` must be \(B, T, \*S, C\) or unbatched "
        r"\(T, \*S, C\) with 2 spatial axes S",
    ):
        layer(params, jnp.ones((4, 6, 1)))
    with pytest.raises(ValueError, match=r"spatial_shape=\(6, 6\)"):
        layer(params, jnp.ones((1, 4, 7, 6, 1)))


def test_bad_initial_state_names_the_shape_it_wants():
    layer = RNN(ConvLSTM2DCell(2, 3))
    params = random_params_for(layer, (None, 4, 6, 6, 1))
    with pytest.raises(
        ValueError,
        match=r"`initial_state\[0\]` must have shape \(1, 4, 4, 2\) for "
        r"inputs \(1, 4, 6, 6, 1\), got \(1, 6, 6, 2\)",
    ):
        layer(
            params,
            jnp.ones((1, 4, 6, 6, 1)),
            initial_state=[jnp.zeros((1, 6, 6, 2))] * 2,
        )


def test_output_shape_of_a_cell_of_unknown_frames_says_so():
    class _Frames(jaxrnn.LSTMCell):
        input_ndim = 2

    with pytest.raises(TypeError, match=r"RNN.output_shape.*_Frames"):
        RNN(_Frames(3)).output_shape((None, 4, 5, 6))
