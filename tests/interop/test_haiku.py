"""Haiku's hk.LSTM, hk.GRU and hk.VanillaRNN params: parity of one step and
a whole sequence in both directions, round trips, and every rejected input."""

import pytest

hk = pytest.importorskip("haiku")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from keras_helpers import assert_parity  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.interop import from_haiku, to_haiku  # noqa: E402

B, T, D, H = 3, 5, 4, 6

CORES = {
    "LSTM": lambda name=None: hk.LSTM(H, name=name),
    "GRU": lambda name=None: hk.GRU(H, name=name),
    "VanillaRNN": lambda name=None: hk.VanillaRNN(H, name=name),
    "VanillaRNN-single-bias": lambda name=None: hk.VanillaRNN(
        H, double_bias=False, name=name
    ),
}


def _normal(shape, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)


def _randomized(tree, seed):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten(
        [_normal(np.shape(leaf), seed + i) for i, leaf in enumerate(leaves)]
    )


def _xs(seed=100):
    return _normal((B, T, D), seed, scale=1.0)


def _carry(is_lstm, seed=200):
    h = _normal((B, H), seed)
    return (h, _normal((B, H), seed + 1)) if is_lstm else h


def _haiku_state(carry):
    """jaxrnn's (h, c) <-> hk.LSTMState(hidden, cell)."""
    return hk.LSTMState(*carry) if isinstance(carry, tuple) else carry


def _jaxrnn_carry(state):
    return (
        (state.hidden, state.cell)
        if isinstance(state, hk.LSTMState)
        else state
    )


def _transformed(kind, name=None):
    """(init, step, sequence) for one Haiku core, batched."""

    def step(x, state):
        return CORES[kind](name)(x, state)

    def sequence(xs, state):
        return hk.dynamic_unroll(
            CORES[kind](name), xs, state, time_major=False
        )

    step_fn = hk.without_apply_rng(hk.transform(step))
    sequence_fn = hk.without_apply_rng(hk.transform(sequence))
    return step_fn, sequence_fn


def _haiku_params(kind, seed, name=None):
    step, _ = _transformed(kind, name)
    state = _haiku_state(_carry(kind == "LSTM"))
    return _randomized(step.init(jax.random.key(0), _xs()[:, 0], state), seed)


def _compare_runs(name, kind, cell, params, hk_params):
    step, sequence = _transformed(kind)
    carry = _carry(isinstance(cell, jaxrnn.LSTMCell))
    xs = _xs()
    new_carry, y = cell(params, carry, xs[:, 0])
    their_y, their_state = step.apply(hk_params, xs[:, 0], _haiku_state(carry))
    assert_parity(
        f"{name}-step]",
        [y, *jax.tree.leaves(new_carry)],
        [their_y, *jax.tree.leaves(_jaxrnn_carry(their_state))],
    )
    ys, final = jaxrnn.rnn(cell, params, xs, initial_carry=carry)
    their_ys, their_final = sequence.apply(hk_params, xs, _haiku_state(carry))
    assert_parity(
        f"{name}-sequence]",
        [ys, *jax.tree.leaves(final)],
        [their_ys, *jax.tree.leaves(_jaxrnn_carry(their_final))],
    )


@pytest.mark.parametrize("kind", CORES)
def test_from_haiku_matches_haiku(kind):
    hk_params = _haiku_params(kind, 10)
    cell, params = from_haiku(hk_params)
    _compare_runs(f"from_haiku[{kind}", kind, cell, params, hk_params)


@pytest.mark.parametrize(
    "kind, cell",
    [
        ("LSTM", jaxrnn.LSTMCell(H)),
        ("GRU", jaxrnn.GRUCell(H, reset_after=False)),
        ("VanillaRNN", jaxrnn.SimpleRNNCell(H, activation="relu")),
        ("VanillaRNN-single-bias", jaxrnn.SimpleRNNCell(H, activation="relu")),
    ],
)
def test_from_haiku_builds_the_counterpart_cell(kind, cell):
    assert from_haiku(_haiku_params(kind, 0))[0] == cell


def test_from_haiku_folds_the_forget_bias_and_reorders_gates():
    hk_params = _haiku_params("LSTM", 20)
    _, params = from_haiku(hk_params)
    b_i, b_g, b_f, b_o = np.split(np.asarray(hk_params["lstm/linear"]["b"]), 4)
    np.testing.assert_array_equal(
        params["bias"], np.concatenate([b_i, b_f + 1, b_g, b_o])
    )
    w = np.asarray(hk_params["lstm/linear"]["w"])
    np.testing.assert_array_equal(params["recurrent_kernel"][:, :H], w[D:, :H])


def test_from_haiku_negates_the_gru_update_gate():
    hk_params = _haiku_params("GRU", 30)
    _, params = from_haiku(hk_params)
    w_i = np.asarray(hk_params["gru"]["w_i"])
    np.testing.assert_array_equal(params["kernel"][:, :H], -w_i[:, :H])
    np.testing.assert_array_equal(params["kernel"][:, H:], w_i[:, H:])


@pytest.mark.parametrize("kind", ["GRU", "VanillaRNN-single-bias"])
def test_haiku_round_trip_is_exact(kind):
    hk_params = _haiku_params(kind, 40)
    back = to_haiku(*from_haiku(hk_params))
    if kind.startswith("VanillaRNN"):
        # Zeros, which a double_bias=False core never asks for.
        del back["vanilla_rnn/linear_1"]["b"]
    assert jax.tree.structure(back) == jax.tree.structure(hk_params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(hk_params)):
        np.testing.assert_array_equal(a, b)


def test_lstm_round_trip_rounds_only_the_forget_bias():
    hk_params = _haiku_params("LSTM", 50)
    back = to_haiku(*from_haiku(hk_params))["lstm/linear"]
    theirs = hk_params["lstm/linear"]
    np.testing.assert_array_equal(back["w"], theirs["w"])
    # b + 1 - 1 rounds once: within half an ulp of |b + 1|.
    f = slice(2 * H, 3 * H)  # Haiku's gate order is (i, g, f, o)
    bound = np.spacing(np.abs(np.asarray(theirs["b"][f])) + 1) / 2
    assert np.all(np.abs(back["b"][f] - theirs["b"][f]) <= bound)
    rest = np.r_[0 : 2 * H, 3 * H : 4 * H]
    np.testing.assert_array_equal(back["b"][rest], theirs["b"][rest])


CELLS = {
    "LSTM": jaxrnn.LSTMCell(H),
    "LSTM-nobias": jaxrnn.LSTMCell(H, use_bias=False),
    "GRU": jaxrnn.GRUCell(H, reset_after=False),
    "GRU-nobias": jaxrnn.GRUCell(H, reset_after=False, use_bias=False),
    "VanillaRNN": jaxrnn.SimpleRNNCell(H, activation="relu"),
    "VanillaRNN-nobias": jaxrnn.SimpleRNNCell(
        H, activation="relu", use_bias=False
    ),
}


@pytest.mark.parametrize("kind", CELLS)
def test_to_haiku_matches_jaxrnn(kind):
    cell = CELLS[kind]
    params = _randomized(cell.init(jax.random.key(0), D), 60)
    hk_params = to_haiku(cell, params)
    _compare_runs(
        f"to_haiku[{kind}", kind.split("-")[0], cell, params, hk_params
    )
    if cell.use_bias and not isinstance(cell, jaxrnn.LSTMCell):
        back_cell, back = from_haiku(hk_params)
        assert back_cell == cell
        for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
            np.testing.assert_array_equal(a, b)


def test_to_haiku_params_fit_a_single_bias_vanilla_rnn():
    cell = jaxrnn.SimpleRNNCell(H, activation="relu")
    params = _randomized(cell.init(jax.random.key(0), D), 70)
    _compare_runs(
        "to_haiku[VanillaRNN-single-bias",
        "VanillaRNN-single-bias",
        cell,
        params,
        to_haiku(cell, params),
    )


def test_haiku_cores_inside_a_model_by_name():
    def model(xs):
        lstm, gru = hk.LSTM(H, name="encoder"), hk.GRU(H, name="decoder")
        ys, _ = hk.dynamic_unroll(
            lstm, xs, lstm.initial_state(B), time_major=False
        )
        return hk.dynamic_unroll(
            gru, ys, gru.initial_state(B), time_major=False
        )

    hk_params = hk.transform(model).init(jax.random.key(0), _xs())
    encoder, _ = from_haiku(hk_params, name="encoder")
    decoder, decoder_params = from_haiku(hk_params, name="decoder")
    assert isinstance(encoder, jaxrnn.LSTMCell)
    assert decoder == jaxrnn.GRUCell(H, reset_after=False)
    assert set(to_haiku(decoder, decoder_params, name="decoder")) == {
        "decoder"
    }
    with pytest.raises(
        ValueError,
        match=r"modules \['decoder', "
        r"'encoder/linear'\]. Pass `name`",
    ):
        from_haiku(hk_params)


# Rejections.


@pytest.mark.parametrize(
    "params, name, error, match",
    [
        ([], None, TypeError, "`params` must be a dict.*list"),
        (
            {
                "lstm/linear": {
                    "w": jnp.zeros((D + H, 4 * H)),
                    "b": jnp.zeros(4 * H),
                }
            },
            "gru",
            ValueError,
            r"no module named 'gru' or under it; its modules are \['lstm/linear'\]",
        ),
        (
            {"lstm/linear": {"w": jnp.zeros((D + H, 4 * H))}},
            None,
            ValueError,
            r"hk.LSTM \('lstm/linear'\) params do not fit|must hold \['b', 'w'\]",
        ),
        (
            {
                "lstm/linear": {
                    "w": jnp.zeros((D + H, 4 * H + 1)),
                    "b": jnp.zeros(4 * H),
                }
            },
            None,
            ValueError,
            r"must have shape \(D \+ H, 4H\) with D >= 1, got \(10, 25\)",
        ),
        (
            {
                "lstm/linear": {
                    "w": jnp.zeros((D + H, 4 * H)),
                    "b": jnp.zeros(4 * H + 4),
                }
            },
            None,
            ValueError,
            r"\['b'\] must have shape \(24,\), got \(28,\)",
        ),
        (
            {
                "gru": {
                    "w_i": jnp.zeros((D, 3 * H)),
                    "w_h": jnp.zeros((H, 3 * H)),
                    "b": jnp.zeros(3 * H, jnp.int32),
                }
            },
            None,
            TypeError,
            r"hk.GRU \('gru'\) params\['gru'\]\['b'\] must have a floating dtype",
        ),
        (
            {
                "gru": {
                    "w_i": jnp.zeros((D, 3 * H)),
                    "w_h": jnp.zeros((H, 2 * H)),
                    "b": jnp.zeros(3 * H),
                }
            },
            None,
            ValueError,
            r"\['w_h'\] must have shape \(6, 18\), got \(6, 12\)",
        ),
        (
            {
                "rnn/linear": {"w": jnp.zeros((D, H)), "b": jnp.zeros(H)},
                "rnn/linear_1": {"kernel": jnp.zeros((H, H))},
            },
            None,
            ValueError,
            r"hk.VanillaRNN \('rnn'\) params\['rnn/linear_1'\] must hold \['w'\] or "
            r"\['b', 'w'\], got \['kernel'\]",
        ),
        (
            {
                "mlp/linear": {"w": jnp.zeros((D, H)), "b": jnp.zeros(H)},
                "mlp/linear_2": {"w": jnp.zeros((H, H))},
            },
            None,
            ValueError,
            "must hold one core's params",
        ),
        ({"gru": {}}, 3, TypeError, "`name` must be a module name"),
    ],
    ids=[
        "list",
        "no-such-name",
        "missing-b",
        "lstm-columns",
        "lstm-b",
        "integer",
        "gru-w_h",
        "vanilla-names",
        "not-a-core",
        "bad-name",
    ],
)
def test_from_haiku_rejects(params, name, error, match):
    with pytest.raises(error, match=match):
        from_haiku(params, name)


@pytest.mark.parametrize(
    "cell, error, match",
    [
        (
            jaxrnn.GRUCell(H),
            ValueError,
            r"reset gate before.*GRUCell\(reset_after=False\)",
        ),
        (
            jaxrnn.LSTMCell(H, activation="relu"),
            ValueError,
            "hk.LSTM always uses activation 'tanh'",
        ),
        (
            jaxrnn.GRUCell(
                H, reset_after=False, recurrent_activation="hard_sigmoid"
            ),
            ValueError,
            "hk.GRU always uses recurrent_activation 'sigmoid'",
        ),
        (
            jaxrnn.SimpleRNNCell(H),
            ValueError,
            "hk.VanillaRNN always uses activation 'relu'.*activation='tanh'",
        ),
        (
            jaxrnn.SimpleRNNCell(H, activation="relu", precision="high"),
            ValueError,
            "precision",
        ),
        (
            jaxrnn.SimpleRNNCell(H, activation="relu", dtype="bfloat16"),
            ValueError,
            "dtype",
        ),
        (
            jaxrnn.StackedCells([jaxrnn.LSTMCell(H)]),
            TypeError,
            r"Haiku counterpart: LSTMCell \(hk.LSTM\).*got StackedCells",
        ),
    ],
)
def test_to_haiku_rejects_cells_without_a_counterpart(cell, error, match):
    with pytest.raises(error, match=match):
        to_haiku(cell, cell.init(jax.random.key(0), D))


def test_to_haiku_rejects_misshapen_params_and_bad_names():
    cell = jaxrnn.LSTMCell(H)
    params = cell.init(jax.random.key(0), D)
    with pytest.raises(TypeError, match="`name` must be a non-empty"):
        to_haiku(cell, params, name="")
    params["kernel"] = params["kernel"][None]
    with pytest.raises(
        ValueError,
        match=r"LSTMCell params\['kernel'\] must "
        r"have shape \(D, 24\), got \(1, 4, 24\)",
    ):
        to_haiku(cell, params)
