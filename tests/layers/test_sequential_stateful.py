"""Stateful Sequential: states threaded between chunks, explicitly."""

import functools

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

from jaxrnn.layers import (
    GRU,
    LSTM,
    BatchNormalization,
    Bidirectional,
    Dense,
    Embedding,
    Sequential,
    SimpleRNN,
)

LAYERS = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}
# Equal chunks: one compiled step serves them all.
CHUNKS = [(0, 3), (3, 6), (6, 9)]
X = np.random.default_rng(0).standard_normal((2, 9, 3)).astype("float32")


def _stacked(name):
    layer = LAYERS[name]
    return Sequential(
        [
            layer(4, return_sequences=True, stateful=True),
            layer(3, return_sequences=True, stateful=True),
            Dense(2),
        ]
    )


@functools.cache
def _step(model):
    """One jitted chunk step per model, shared by the tests."""
    return jax.jit(lambda params, x, states: model(params, x, states=states))


def _run_chunks(model, params, x, states=None, mask=None):
    outputs = []
    for start, stop in CHUNKS:
        chunk_mask = None if mask is None else mask[:, start:stop]
        y, states = model(
            params, x[:, start:stop], states=states, mask=chunk_mask
        )
        outputs.append(y)
    return jnp.concatenate(outputs, axis=1), states


@pytest.mark.parametrize("name", LAYERS)
def test_chunks_with_threaded_states_equal_one_run(name, key):
    model = _stacked(name)
    params = model.init(key, (2, None, 3))
    step = _step(model)
    states = model.initial_states(X.shape)
    chunks = []
    for start, stop in CHUNKS:
        y, states = step(params, X[:, start:stop], states)
        chunks.append(y)
    whole, whole_states = model(params, X)
    np.testing.assert_allclose(
        jnp.concatenate(chunks, axis=1), whole, atol=1e-6
    )
    assert whole_states[2] is None and states[2] is None
    for mine, theirs in zip(
        jax.tree.leaves(states), jax.tree.leaves(whole_states)
    ):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)


def test_jitted_step_compiles_once_from_initial_states(key):
    """`initial_states` has the structure of every later state, so one
    trace serves the whole stream (states=None would trace again)."""
    model = _stacked("GRU")
    params = model.init(key, (2, None, 3))
    traces = []

    @jax.jit
    def step(params, x, states):
        traces.append(None)  # runs once per trace, not per call
        return model(params, x, states=states)

    states = model.initial_states((2, 3, 3))
    for start in (0, 3, 6):
        _, states = step(params, X[:, start : start + 3], states)
    assert len(traces) == 1


def test_no_states_start_from_zeros(key):
    model = _stacked("LSTM")
    params = model.init(key, (2, None, 3))
    zeros = model.initial_states((2, None, 3))
    assert zeros[2] is None
    assert [h.shape for h in zeros[0]] == [(2, 4), (2, 4)]
    assert all(not np.any(h) for h in jax.tree.leaves(zeros))
    from_none, states_none = model(params, X)
    from_zeros, states_zeros = model(params, X, states=zeros)
    np.testing.assert_array_equal(from_none, from_zeros)
    for a, b in zip(
        jax.tree.leaves(states_none), jax.tree.leaves(states_zeros)
    ):
        np.testing.assert_array_equal(a, b)


def test_a_none_entry_resets_that_layer_only(key):
    """Keras' ``model.layers[i].reset_state()``: None for layer i."""
    model = _stacked("SimpleRNN")
    params = model.init(key, (2, None, 3))
    _, states = model(params, X[:, :4])
    y, _ = model(params, X[:, 4:], states=[None, states[1], None])
    # The same as layer by layer: the first from zeros, the second going on.
    first, _ = model.layers[0](params[0], X[:, 4:])
    second, _ = model.layers[1](params[1], first, initial_state=states[1])
    np.testing.assert_allclose(
        y, model.layers[2](params[2], second), atol=1e-6
    )


def _keras_constants(template, lstm):
    """Keras' test weights: Constant(0.01) kernels, Constant(0.02)
    recurrent kernels, Constant(0.03) biases (an LSTM's forget gate: 1)."""
    value = {"kernel": 0.01, "recurrent_kernel": 0.02, "bias": 0.03}

    def fill(path, w):
        w = jnp.full_like(w, value[path[-1].key])
        if lstm and path[-1].key == "bias":
            # unit_forget_bias: Keras sets the forget gate's bias to ones.
            units = w.shape[0] // 4
            w = w.at[units : 2 * units].set(1.0)
        return w

    return jax.tree_util.tree_map_with_path(fill, template)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("LSTM", [0.3124785, 0.6863672]),
        ("GRU", [0.29542392, 0.5885018]),
        ("SimpleRNN", [0.40559256, 0.7361247]),
    ],
)
def test_statefulness_keras_values(name, expected, key):
    """keras/src/layers/rnn/lstm_test.py::test_statefulness (and
    gru_test.py, simple_rnn_test.py): the second call goes on from the
    first's states; after a reset (states=None) the same again."""
    sequence = np.arange(24).reshape((2, 3, 4)).astype("float32")
    model = Sequential([LAYERS[name](4, stateful=True)])
    params = _keras_constants(
        model.init(key, (2, None, 4)), lstm=name == "LSTM"
    )
    want = np.repeat(np.array(expected, "float32")[:, None], 4, axis=1)
    for _ in range(2):  # the second round after Keras' reset_state()
        _, states = model(params, sequence)
        output, _ = model(params, sequence, states=states)
        np.testing.assert_allclose(output, want, atol=1e-5, rtol=1e-5)


def test_bidirectional_statefulness_keras_values(key):
    """keras/src/layers/rnn/bidirectional_test.py::test_statefulness"""
    sequence = np.arange(24).reshape((2, 4, 3)).astype("float32")
    model = Sequential([Bidirectional(LSTM(2, stateful=True))])
    params = _keras_constants(model.init(key, (2, None, 3)), lstm=True)
    _, states = model(params, sequence)
    assert [s.shape for s in states[0]] == [(2, 2)] * 4
    output, _ = model(params, sequence, states=states)
    np.testing.assert_allclose(
        output,
        [
            [0.26234663, 0.26234663, 0.16959146, 0.16959146],
            [0.6137073, 0.6137073, 0.5381646, 0.5381646],
        ],
        atol=1e-5,
        rtol=1e-5,
    )


def _params_from_keras_model(model, keras_model, input_shape):
    """Our params from a Keras Sequential of the same layers."""
    params = []
    for template, keras_layer in zip(
        model.init(jax.random.key(0), input_shape), keras_model.layers
    ):
        weights = keras_layer.get_weights()
        if "embeddings" in template:
            params.append({"embeddings": weights[0]})
        elif "recurrent_kernel" in template or "forward" in template:
            params.append(params_from_keras(template, weights))
        else:
            params.append(dict(zip(["kernel", "bias"], weights)))
    return params


def _keras_states(keras_model):
    return [
        [np.asarray(v.value) for v in layer.states]
        for layer in keras_model.layers
        if getattr(layer, "stateful", False)
    ]


def test_stacked_stateful_model_matches_keras_across_chunks_and_reset(request):
    keras_model = keras.Sequential(
        [
            keras.Input(batch_shape=(2, None, 3)),
            keras.layers.LSTM(5, stateful=True, return_sequences=True),
            keras.layers.Bidirectional(
                keras.layers.GRU(4, stateful=True, return_sequences=True)
            ),
            keras.layers.SimpleRNN(3, stateful=True),
            keras.layers.Dense(2),
        ]
    )
    randomize_keras_weights(keras_model, 1)
    model = Sequential(
        [
            LSTM(5, stateful=True, return_sequences=True),
            Bidirectional(GRU(4, stateful=True, return_sequences=True)),
            SimpleRNN(3, stateful=True),
            Dense(2),
        ]
    )
    params = _params_from_keras_model(model, keras_model, (2, None, 3))
    step = _step(model)
    states = model.initial_states(X.shape)
    for start, stop in CHUNKS:
        theirs = keras_model(X[:, start:stop])
        mine, states = step(params, X[:, start:stop], states)
        assert_parity(request.node.name, mine, theirs)
    assert_parity(
        request.node.name,
        [s for s in states if s is not None],
        _keras_states(keras_model),
    )
    # Keras' reset_state() on each layer is starting from zeros again.
    for layer in keras_model.layers[:3]:
        layer.reset_state()
    mine, _ = step(params, X[:, 3:6], model.initial_states(X.shape))
    assert_parity(request.node.name, mine, keras_model(X[:, 3:6]))


def test_stateful_model_with_a_padded_chunk_matches_keras(request):
    """The mask from Embedding(mask_zero=True) reaches the stateful layer:
    padded steps keep the states, in Keras and here."""
    keras_model = keras.Sequential(
        [
            keras.Input(batch_shape=(2, None), dtype="int32"),
            keras.layers.Embedding(20, 3, mask_zero=True),
            keras.layers.LSTM(4, stateful=True, return_sequences=True),
            keras.layers.GRU(3, stateful=True),
            keras.layers.Dense(2),
        ]
    )
    randomize_keras_weights(keras_model, 2)
    model = Sequential(
        [
            Embedding(20, 3, mask_zero=True),
            LSTM(4, stateful=True, return_sequences=True),
            GRU(3, stateful=True),
            Dense(2),
        ]
    )
    params = _params_from_keras_model(model, keras_model, (2, None))
    # Each chunk of a row starts with a valid step: at masked steps before
    # any valid one in a call Keras' JAX backend outputs the incoming h,
    # its TensorFlow backend (and jaxrnn) zeros.
    ids = np.array(
        [[3, 9, 4, 1, 7, 2, 5, 0, 0], [8, 6, 2, 2, 4, 0, 7, 0, 0]], "int32"
    )
    states = model.initial_states(ids.shape)
    for start, stop in CHUNKS:
        theirs = keras_model(ids[:, start:stop])
        mine, states = _step(model)(params, ids[:, start:stop], states)
        assert_parity(request.node.name, mine, theirs)
    assert_parity(
        request.node.name,
        [s for s in states if s is not None],
        _keras_states(keras_model),
    )


def test_masked_steps_keep_the_states(key):
    """A row padded at the end of its last chunk ends with the states of
    its last valid step."""
    model = _stacked("LSTM")
    params = model.init(key, (2, None, 3))
    mask = np.ones((2, 9), bool)
    mask[1, 7:] = False
    _, states = _run_chunks(
        model, params, jnp.asarray(X), mask=jnp.asarray(mask)
    )
    _, row_states = model(params, X[1:, :7])
    for mine, theirs in zip(
        jax.tree.leaves(states), jax.tree.leaves(row_states)
    ):
        np.testing.assert_allclose(mine[1:], theirs, atol=1e-6)


def test_bidirectional_states_thread_as_the_layer_does(key):
    """Bidirectional's backward direction reads each chunk from its own
    end (as in Keras), so chunks differ from one run; the model threads
    exactly what the layer alone returns."""
    model = Sequential(
        [
            Bidirectional(LSTM(3, stateful=True, return_sequences=True)),
            Dense(2),
        ]
    )
    params = model.init(key, (2, None, 3))
    y, states = _run_chunks(model, params, jnp.asarray(X))
    layer_states, outputs = None, []
    for start, stop in CHUNKS:
        out, *layer_states = model.layers[0](
            params[0], X[:, start:stop], initial_state=layer_states
        )
        outputs.append(model.layers[1](params[1], out))
    np.testing.assert_allclose(y, jnp.concatenate(outputs, axis=1), atol=1e-6)
    for mine, theirs in zip(states[0], layer_states):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)


def test_nested_stateful_sequential_threads_its_own_states(key):
    inner = Sequential(
        [LSTM(4, return_sequences=True, stateful=True), Dense(4)]
    )
    model = Sequential([inner, GRU(3, stateful=True)])
    flat = Sequential([*inner.layers, GRU(3, stateful=True)])
    params = model.init(key, (2, None, 3))
    states = model.initial_states((2, None, 3))
    assert [len(states[0]), states[0][1], len(states[1])] == [2, None, 1]
    y, states = _run_chunks(model, params, jnp.asarray(X), states=states)
    y_flat, flat_states = _run_chunks(
        flat, [*params[0], params[1]], jnp.asarray(X)
    )
    np.testing.assert_allclose(y, y_flat, atol=1e-6)
    for mine, theirs in zip(
        jax.tree.leaves(states), jax.tree.leaves(flat_states)
    ):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)


def test_training_returns_states_and_moved_statistics(key):
    model = Sequential(
        [
            LSTM(4, return_sequences=True, stateful=True),
            BatchNormalization(),
            Dense(2),
        ]
    )
    params = model.init(key, (2, None, 3))
    (y, states), new_params = model.apply(params, X, training=True)
    assert (
        y.shape == (2, 9, 2) and [s.shape for s in states[0]] == [(2, 4)] * 2
    )
    assert not np.allclose(
        new_params[1]["moving_mean"], params[1]["moving_mean"]
    )
    (y_eval, _), same = model.apply(params, X, states=None)
    assert same == params
    np.testing.assert_array_equal(y_eval, model(params, X)[0])


def test_stateless_model_returns_the_output_alone(key):
    model = Sequential([LSTM(4), Dense(2)])
    params = model.init(key, (None, None, 3))
    assert not model.stateful and model(params, X).shape == (2, 2)
    with pytest.raises(
        ValueError,
        match=r"`states` is for a model with "
        r"stateful layers.*\['LSTM', 'Dense'\]",
    ):
        model(params, X, states=[None, None])
    with pytest.raises(ValueError, match="`initial_states` is for a model"):
        model.initial_states((2, None, 3))


def test_return_state_is_still_refused():
    with pytest.raises(
        ValueError,
        match=r"layers\[0\] \(LSTM\) has "
        r"return_state=True.*single output.*stateful=True",
    ):
        Sequential([LSTM(3, return_state=True, stateful=True)])


def test_states_must_be_one_entry_per_layer(key):
    model = _stacked("GRU")
    params = model.init(key, (2, None, 3))
    states = model.initial_states(X.shape)
    with pytest.raises(
        ValueError,
        match=r"`states` must be a list of 3 "
        r"entries.*got a list of 2",
    ):
        model(params, X, states=states[:2])
    with pytest.raises(
        ValueError,
        match=r"`states\[2\]` must be None as "
        r"layers\[2\] \(Dense\) is not stateful",
    ):
        model(params, X, states=[*states[:2], [jnp.zeros((2, 2))]])


def test_states_of_another_batch_size_name_the_layer(key):
    model = _stacked("LSTM")
    params = model.init(key, (2, None, 3))
    states = model.initial_states((5, None, 3))
    with pytest.raises(
        ValueError,
        match=r"`states\[0\]` for layers\[0\] "
        r"\(LSTM\) must hold 2 array\(s\) of shapes "
        r"\[\(2, 4\), \(2, 4\)\] for inputs \(2, 9, 3\), got "
        r"\[\(5, 4\), \(5, 4\)\]",
    ):
        model(params, X, states=states)


def test_initial_states_need_a_batch_size():
    with pytest.raises(
        ValueError,
        match=r"layers\[0\] \(LSTM\) is stateful.*"
        r"\(None, 4\).*fixed batch size",
    ):
        _stacked("LSTM").initial_states((None, None, 3))


def test_unbatched_inputs_to_a_stateful_model_are_refused(key):
    model = _stacked("SimpleRNN")
    params = model.init(key, (2, None, 3))
    with pytest.raises(ValueError, match="A stateful SimpleRNN reads batches"):
        model(params, X[0])
