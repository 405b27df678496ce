"""RNN, SimpleRNN, LSTM, GRU layers: Keras parity, shapes, counts, states."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import (
    assert_parity,
    params_from_keras,
    randomize_keras_weights,
)
from subsets import default_subset, pairwise

import jaxrnn

B, T, D = 3, 7, 5


def _inputs(seed=0):
    return (
        np.random.default_rng(seed)
        .standard_normal((B, T, D))
        .astype("float32")
    )


def _mask(kind):
    mask = np.ones((B, T), bool)
    if kind == "right":
        mask[1, 4:] = False
        mask[2, 1:] = False
    elif kind == "left":
        mask[1, :3] = False
        mask[2, :6] = False
    elif kind == "holes":
        mask[0, 2] = mask[1, 0] = mask[1, 5] = mask[2, 3:5] = False
    return None if kind == "none" else mask


def _pair(name, units=4, **kwargs):
    """A Keras layer and the jaxrnn layer with the same arguments."""
    return getattr(keras.layers, name)(units, **kwargs), getattr(jaxrnn, name)(
        units, **kwargs
    )


def _run_both(keras_layer, ours, x, mask=None, initial_state=None, seed=1):
    keras_layer(x)  # builds the weights
    randomize_keras_weights(keras_layer, seed)
    kwargs = {} if mask is None else {"mask": mask}
    if initial_state is not None:
        kwargs["initial_state"] = initial_state
    theirs = keras_layer(x, **kwargs)
    params = params_from_keras(
        ours.init(jax.random.key(0), x.shape), keras_layer.get_weights()
    )
    jax_kwargs = {
        k: (jnp.asarray(v) if k == "mask" else v) for k, v in kwargs.items()
    }
    mine = jax.jit(lambda p, x: ours(p, x, **jax_kwargs))(
        params, jnp.asarray(x)
    )
    return mine, theirs


LAYER_CASES = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu"}),
    ("LSTM", {}),
    ("LSTM", {"recurrent_activation": "hard_sigmoid", "activation": "relu"}),
    ("LSTM", {"use_bias": False}),
    ("LSTM", {"unit_forget_bias": False}),
    ("GRU", {}),
    ("GRU", {"reset_after": False}),
    ("GRU", {"recurrent_activation": "hard_sigmoid"}),
    ("GRU", {"use_bias": False, "reset_after": False}),
]


MASK_KINDS = ["none", "right", "left", "holes"]
FLAGS = [(True, False), (False, False), (True, True), (False, True)]


def _layer_case_subset(
    name, kwargs, return_sequences, go_backwards, mask_kind
):
    """Every (layer case, mask), (layer case, flags) and (mask, flags) pair
    runs by default: 40 of the 160 cases; CI's thorough pass runs the rest."""
    keep = pairwise(
        ("case", LAYER_CASES), ("mask", MASK_KINDS), ("flags", FLAGS)
    )
    return keep(
        case=(name, kwargs),
        mask=mask_kind,
        flags=(return_sequences, go_backwards),
    )


@default_subset(_layer_case_subset)
@pytest.mark.parametrize("name,kwargs", LAYER_CASES)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
def test_layer_matches_keras(
    name, kwargs, return_sequences, go_backwards, mask_kind, request
):
    keras_layer, ours = _pair(
        name,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        return_state=True,
        **kwargs,
    )
    mine, theirs = _run_both(keras_layer, ours, _inputs(), _mask(mask_kind))
    assert_parity(request.node.name, mine, theirs)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("mask_kind", ["right", "left", "holes"])
def test_zero_output_for_mask_matches_keras(name, mask_kind, request):
    # return_sequences=True only: with return_sequences=False Keras returns
    # zeros for a row whose last step is masked, jaxrnn that row's last valid
    # output (the flag is documented to concern sequences); see
    # test_zero_output_for_mask_last_output in tests/test_rnn.py.
    keras_layer, ours = _pair(
        name,
        return_sequences=True,
        return_state=True,
        zero_output_for_mask=True,
    )
    mine, theirs = _run_both(keras_layer, ours, _inputs(), _mask(mask_kind))
    assert_parity(request.node.name, mine, theirs)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("mask_kind", ["none", "right"])
def test_initial_state_matches_keras(name, mask_kind, request):
    # Left-padded masks are left out: Keras' JAX scan then takes the initial
    # state as the "previous output" of the leading masked steps, where its
    # unrolled path and its TensorFlow backend (and jaxrnn) output zeros.
    keras_layer, ours = _pair(name, return_sequences=True, return_state=True)
    states = 2 if name == "LSTM" else 1
    rng = np.random.default_rng(5)
    initial = [
        rng.standard_normal((B, 4)).astype("float32") for _ in range(states)
    ]
    mine, theirs = _run_both(
        keras_layer, ours, _inputs(), _mask(mask_kind), initial_state=initial
    )
    assert_parity(request.node.name, mine, theirs)


@pytest.mark.parametrize("unroll", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "holes"])
def test_unrolled_layer_matches_keras(unroll, mask_kind, request):
    keras_layer, ours = _pair(
        "LSTM", return_sequences=True, return_state=True, unroll=unroll
    )
    mine, theirs = _run_both(keras_layer, ours, _inputs(), _mask(mask_kind))
    assert_parity(request.node.name, mine, theirs)


@pytest.mark.parametrize("mask_kind", ["none", "right", "holes"])
def test_stacked_cells_match_keras(mask_kind, request):
    keras_layer = keras.layers.RNN(
        [
            keras.layers.LSTMCell(3),
            keras.layers.GRUCell(4),
            keras.layers.SimpleRNNCell(2),
        ],
        return_sequences=True,
        return_state=True,
    )
    ours = jaxrnn.RNN(
        [jaxrnn.LSTMCell(3), jaxrnn.GRUCell(4), jaxrnn.SimpleRNNCell(2)],
        return_sequences=True,
        return_state=True,
    )
    mine, theirs = _run_both(keras_layer, ours, _inputs(), _mask(mask_kind))
    assert_parity(request.node.name, mine, theirs)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_stateful_chunks_match_keras(name, request):
    keras_layer = getattr(keras.layers, name)(
        4, return_sequences=True, stateful=True
    )
    ours = getattr(jaxrnn, name)(4, return_sequences=True, stateful=True)
    x = _inputs()
    keras_layer(x[:, :3])
    randomize_keras_weights(keras_layer, 3)
    keras_layer.reset_state()
    params = params_from_keras(
        ours.init(jax.random.key(0), x.shape), keras_layer.get_weights()
    )
    state = None
    for start, stop in [(0, 3), (3, 5), (5, 7)]:
        theirs = keras_layer(x[:, start:stop])
        mine, *state = ours(
            params, jnp.asarray(x[:, start:stop]), initial_state=state
        )
        assert_parity(request.node.name, mine, theirs)
    assert_parity(
        request.node.name, state, [v.value for v in keras_layer.states]
    )


def test_cell_under_rnn_matches_keras(request):
    keras_layer = keras.layers.RNN(
        keras.layers.GRUCell(4, reset_after=False),
        return_sequences=True,
        go_backwards=True,
    )
    ours = jaxrnn.RNN(
        jaxrnn.GRUCell(4, reset_after=False),
        return_sequences=True,
        go_backwards=True,
    )
    mine, theirs = _run_both(keras_layer, ours, _inputs(), _mask("holes"))
    assert_parity(request.node.name, mine, theirs)


SHAPE_CASES = [
    lambda m: m.LSTM(8),
    lambda m: m.LSTM(8, return_sequences=True, return_state=True),
    lambda m: m.GRU(6, reset_after=False, return_state=True),
    lambda m: m.GRU(6, use_bias=False),
    lambda m: m.SimpleRNN(5, return_sequences=True),
    lambda m: m.RNN([m.LSTMCell(3), m.LSTMCell(7)], return_state=True),
]


@pytest.mark.parametrize("make", SHAPE_CASES)
def test_output_shape_and_param_count_match_keras(make):
    keras_layer, ours = make(keras.layers), make(jaxrnn)
    keras_layer.build((None, 10, 4))
    assert ours.param_count((None, 10, 4)) == keras_layer.count_params()
    want = keras_layer.compute_output_shape((None, 10, 4))
    got = ours.output_shape((None, 10, 4))

    def normalise(shape):
        if (
            isinstance(shape, (list, tuple))
            and shape
            and isinstance(shape[0], (list, tuple))
        ):
            return [normalise(s) for s in shape]
        return tuple(shape)

    assert normalise(got) == normalise(want) or (
        # Keras nests stacked cells' states per cell; jaxrnn lists them flat.
        [
            tuple(s)
            for s in jax.tree.leaves(
                normalise(want),
                is_leaf=lambda s: (
                    isinstance(s, tuple)
                    and all(d is None or isinstance(d, int) for d in s)
                ),
            )
        ]
        == normalise(got)
    )


def test_output_shape_time_major_and_unbatched():
    layer = jaxrnn.GRU(6, return_sequences=True, time_major=True)
    assert layer.output_shape((10, None, 4)) == (10, None, 6)
    assert jaxrnn.LSTM(3, return_sequences=True).output_shape((9, 4)) == (9, 3)
    assert jaxrnn.LSTM(3).output_shape((9, 4)) == (3,)


def test_time_major_layer_equals_batch_major(key):
    batch_major = jaxrnn.LSTM(4, return_sequences=True, return_state=True)
    time_major = jaxrnn.LSTM(
        4, return_sequences=True, return_state=True, time_major=True
    )
    x = jnp.asarray(_inputs())
    params = batch_major.init(key, x.shape)
    mask = jnp.asarray(_mask("holes"))
    ys, _h, c = batch_major(params, x, mask=mask)
    ys_t, _h_t, c_t = time_major(params, x.swapaxes(0, 1), mask=mask.T)
    np.testing.assert_allclose(ys, ys_t.swapaxes(0, 1), atol=1e-6)
    np.testing.assert_allclose(c, c_t, atol=1e-6)


def test_layers_are_hashable_static_arguments(key):
    layer = jaxrnn.LSTM(4, return_sequences=True)
    assert hash(layer) == hash(jaxrnn.LSTM(4, return_sequences=True))
    x = jnp.asarray(_inputs())
    params = layer.init(key, x.shape)
    apply = jax.jit(lambda layer, p, x: layer(p, x), static_argnums=0)
    np.testing.assert_allclose(
        apply(layer, params, x), layer(params, x), atol=1e-6
    )


def test_layer_gradients_flow(key):
    layer = jaxrnn.GRU(4)
    x = jnp.asarray(_inputs())
    params = layer.init(key, x.shape)
    grads = jax.grad(lambda p: jnp.sum(layer(p, x) ** 2))(params)
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_stateful_layer_returns_states_without_return_state(key):
    layer = jaxrnn.LSTM(4, stateful=True)
    params = layer.init(key, (B, T, D))
    out, h, c = layer(params, jnp.asarray(_inputs()))
    assert out.shape == h.shape == c.shape == (B, 4)


@pytest.mark.parametrize(
    "bad,error,match",
    [
        ({"units": 0}, ValueError, "units"),
        ({"units": 2.5}, TypeError, "units"),
        ({"units": 4, "activation": "nope"}, ValueError, "activation"),
        (
            {"units": 4, "kernel_initializer": "nope"},
            ValueError,
            "initializer",
        ),
        ({"units": 4, "dropout": 1.0}, ValueError, "dropout"),
        (
            {"units": 4, "recurrent_dropout": -0.1},
            ValueError,
            "recurrent_dropout",
        ),
        (
            {"units": 4, "return_sequences": "yes"},
            TypeError,
            "return_sequences",
        ),
    ],
)
def test_bad_layer_arguments(bad, error, match):
    with pytest.raises(error, match=match):
        jaxrnn.LSTM(**bad)


def test_bad_initial_state_count(key):
    layer = jaxrnn.LSTM(4)
    params = layer.init(key, (B, T, D))
    with pytest.raises(ValueError, match="initial_state"):
        layer(
            params, jnp.asarray(_inputs()), initial_state=[jnp.zeros((B, 4))]
        )


def test_rnn_layer_rejects_non_cell():
    with pytest.raises(TypeError, match="cell"):
        jaxrnn.RNN("lstm")
    with pytest.raises(ValueError, match="at least one"):
        jaxrnn.RNN([])


def test_init_rejects_unknown_feature_size(key):
    with pytest.raises(ValueError, match="input_shape"):
        jaxrnn.LSTM(4).init(key, (None, 10, None))
    with pytest.raises(ValueError, match="input_shape"):
        jaxrnn.LSTM(4).init(key, (10,))


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_init_rejects_an_int_input_shape(name, key):
    with pytest.raises(
        TypeError,
        match=r"`input_shape` must be a shape tuple "
        r"such as \(None, T, D\).*got the int 16.*"
        r"\(None, None, 16\)",
    ):
        getattr(jaxrnn, name)(4).init(key, 16)


def test_layer_given_single_steps_with_states_points_at_the_time_axis(key):
    layer = jaxrnn.LSTM(4, return_state=True)
    params = layer.init(key, (None, None, D))
    state = [jnp.zeros((B, 4))] * 2
    with pytest.raises(
        ValueError,
        match=r"`initial_state\[0\]` is batched, "
        r"\(3, 4\).*`inputs` \(3, 5\) has no time axis.*"
        r"\(B, T, D\).*x\[:, None\]",
    ):
        layer(params, jnp.ones((B, D)), initial_state=state)


def test_initial_state_of_another_batch_names_initial_state(key):
    layer = jaxrnn.GRU(4)
    params = layer.init(key, (None, None, D))
    with pytest.raises(
        ValueError,
        match=r"`initial_state\[0\]` must have "
        r"shape \(3, 4\) for inputs \(3, 7, 5\), got \(2, 4\)",
    ):
        layer(params, jnp.asarray(_inputs()), initial_state=jnp.zeros((2, 4)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: jaxrnn.LSTM(4, stateful=True),
        lambda: jaxrnn.GRU(4, return_sequences=True, stateful=True),
        lambda: jaxrnn.Bidirectional(jaxrnn.LSTM(4, stateful=True)),
    ],
)
def test_stateful_layer_refuses_unbatched_inputs(make, key):
    """A (B, D) array given to a stateful layer ran as one sequence of B
    steps; Keras' stateful layers read batches."""
    layer = make()
    params = layer.init(key, (B, T, D))
    with pytest.raises(
        ValueError,
        match=r"A stateful \w+ reads batches "
        r"\(B, T, D\).*got \(3, 5\).*x\[:, None\].*"
        r"return_state=True",
    ):
        layer(params, jnp.ones((B, D)))
    assert jax.tree.leaves(layer(params, jnp.ones((B, 1, D))))[0].shape[0] == B


def test_layer_refuses_inputs_of_no_known_rank(key):
    layer = jaxrnn.LSTM(4)
    params = layer.init(key, (None, None, D))
    with pytest.raises(
        ValueError,
        match=r"`inputs` must have shape \(B, T, "
        r"D\) or unbatched \(T, D\), got \(\) \(rank 0\)",
    ):
        layer(params, jnp.ones(()))


def test_init_given_the_data_asks_for_its_shape(key):
    x = np.ones((B, T, D), np.float32)
    with pytest.raises(
        TypeError,
        match=r"got an array of shape \(3, 7, 5\) "
        r"and dtype float32: pass the data's shape, e.g. "
        r"x.shape",
    ):
        jaxrnn.LSTM(4).init(key, x)
    assert jaxrnn.LSTM(4).init(key, np.array(x.shape))["kernel"].shape == (
        D,
        16,
    )


@pytest.mark.parametrize(
    "layer",
    [
        jaxrnn.LSTM(4),
        jaxrnn.Bidirectional(jaxrnn.GRU(4)),
        jaxrnn.layers.Sequential([jaxrnn.SimpleRNN(4)]),
        jaxrnn.ConvLSTM1D(2, 3),
    ],
)
def test_layer_called_without_params_names_its_class(layer):
    """Python's message named the base class: RecurrentLayer.__call__()."""
    name = type(layer).__name__
    with pytest.raises(
        TypeError,
        match=rf"^{name} takes \(params, (inputs|x)\), "
        r"got one argument: call it as layer\(params, ",
    ):
        layer(jnp.ones((2, 5, 3)))
