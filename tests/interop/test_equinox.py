"""Equinox LSTM and GRU cells: parity of one step and a whole sequence in
both directions, round trips, and every rejected input."""

import pytest

eqx = pytest.importorskip("equinox")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from keras_helpers import assert_parity  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.interop import from_equinox, to_equinox  # noqa: E402

B, T, D, H = 3, 5, 4, 6


def _normal(shape, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)


def _randomized(tree, seed):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten(
        [_normal(np.shape(leaf), seed + i) for i, leaf in enumerate(leaves)]
    )


def _random_module(cls, use_bias, seed):
    """Random values in every array, bias_n too."""
    module = cls(D, H, use_bias=use_bias, key=jax.random.key(seed))
    arrays, static = eqx.partition(module, eqx.is_array)
    return eqx.combine(_randomized(arrays, seed), static)


def _random_params(cell, seed):
    return _randomized(cell.init(jax.random.key(0), D), seed)


def _carry(cell, seed=200):
    h = _normal((B, H), seed)
    return (
        (h, _normal((B, H), seed + 1))
        if isinstance(cell, jaxrnn.LSTMCell)
        else h
    )


def _xs(seed=100):
    return _normal((B, T, D), seed, scale=1.0)


def _run_equinox(module, carry, xs):
    """Equinox steps one example at a time: vmap over the batch, scan over
    time. Returns (ys (B, T, H), final carry)."""

    def one_sequence(carry, xs):
        def step(carry, x):
            carry = module(x, carry)
            return carry, carry[0] if isinstance(carry, tuple) else carry

        carry, ys = jax.lax.scan(step, carry, xs)
        return ys, carry

    return jax.vmap(one_sequence)(carry, xs)


def _compare_runs(name, cell, params, module):
    carry, xs = _carry(cell), _xs()
    new_carry, y = cell(params, carry, xs[:, 0])
    their_carry = jax.vmap(module)(xs[:, 0], carry)
    their_y = their_carry[0] if isinstance(their_carry, tuple) else their_carry
    assert_parity(
        f"{name}-step]",
        [y, *jax.tree.leaves(new_carry)],
        [their_y, *jax.tree.leaves(their_carry)],
    )
    ys, final = jaxrnn.rnn(cell, params, xs, initial_carry=carry)
    their_ys, their_final = _run_equinox(module, carry, xs)
    assert_parity(
        f"{name}-sequence]",
        [ys, *jax.tree.leaves(final)],
        [their_ys, *jax.tree.leaves(their_final)],
    )


def _assert_same_arrays(ours, theirs):
    ours, theirs = (
        eqx.filter(ours, eqx.is_array),
        eqx.filter(theirs, eqx.is_array),
    )
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_array_equal(a, b)


MODULES = [
    ("LSTMCell", True),
    ("LSTMCell", False),
    ("GRUCell", True),
    ("GRUCell", False),
]
IDS = [f"{name}-{'bias' if bias else 'nobias'}" for name, bias in MODULES]


@pytest.mark.parametrize("name, use_bias", MODULES, ids=IDS)
def test_from_equinox_matches_equinox(name, use_bias):
    module = _random_module(getattr(eqx.nn, name), use_bias, 10)
    cell, params = from_equinox(module)
    assert cell.use_bias is use_bias
    _compare_runs(f"from_equinox[{name}-{use_bias}", cell, params, module)
    # Round trip: the same module, array for array.
    _assert_same_arrays(to_equinox(cell, params), module)


def test_from_equinox_puts_bias_n_in_the_recurrent_row():
    module = _random_module(eqx.nn.GRUCell, True, 20)
    _, params = from_equinox(module)
    np.testing.assert_array_equal(
        params["bias"][1], np.concatenate([np.zeros(2 * H), module.bias_n])
    )
    w_r, w_z, w_n = np.split(np.asarray(module.weight_ih), 3)
    np.testing.assert_array_equal(
        params["kernel"], np.concatenate([w_z, w_r, w_n]).T
    )


CELLS = {
    "LSTMCell": jaxrnn.LSTMCell(H),
    "LSTMCell-nobias": jaxrnn.LSTMCell(H, use_bias=False),
    "GRUCell": jaxrnn.GRUCell(H),
    "GRUCell-nobias": jaxrnn.GRUCell(H, use_bias=False),
}


@pytest.mark.parametrize("kind", CELLS)
def test_to_equinox_matches_jaxrnn(kind):
    cell = CELLS[kind]
    params = _random_params(cell, 30)
    module = to_equinox(cell, params)
    _compare_runs(f"to_equinox[{kind}", cell, params, module)
    back_cell, back = from_equinox(module)
    assert back_cell == cell
    if isinstance(cell, jaxrnn.GRUCell) and cell.use_bias:
        # The recurrent z and r biases were added to Equinox's `bias`.
        params["bias"] = params["bias"].at[1, : 2 * H].set(0.0)
        back = from_equinox(to_equinox(cell, params))[1]
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)


def test_to_equinox_fills_a_copy_of_a_template():
    template = eqx.nn.GRUCell(D, H, key=jax.random.key(0))
    cell = jaxrnn.GRUCell(H)
    params = _random_params(cell, 40)
    module = to_equinox(cell, params, template)
    assert not np.array_equal(module.weight_ih, template.weight_ih)
    _compare_runs("to_equinox[GRUCell-template", cell, params, module)


def test_to_equinox_jits():
    cell = jaxrnn.GRUCell(H)
    params = _random_params(cell, 50)
    module = jax.jit(lambda p: to_equinox(cell, p))(params)
    _assert_same_arrays(module, to_equinox(cell, params))


# Rejections.


def test_from_equinox_rejects_other_modules():
    with pytest.raises(
        TypeError,
        match="eqx.nn.LSTMCell or eqx.nn.GRUCell instance, got Linear",
    ):
        from_equinox(eqx.nn.Linear(D, H, key=jax.random.key(0)))
    with pytest.raises(TypeError, match="class itself"):
        from_equinox(eqx.nn.GRUCell)


def test_from_equinox_rejects_arrays_that_do_not_fit():
    module = eqx.nn.LSTMCell(D, H, key=jax.random.key(0))
    module = eqx.tree_at(lambda m: m.weight_hh, module, jnp.zeros((4 * H, 2)))
    with pytest.raises(
        ValueError,
        match=r"eqx.nn.LSTMCell\(input_size=4, "
        r"hidden_size=6, use_bias=True\).weight_hh must have "
        r"shape \(24, 6\), got \(24, 2\)",
    ):
        from_equinox(module)


@pytest.mark.parametrize(
    "cell, error, match",
    [
        (
            jaxrnn.SimpleRNNCell(H),
            TypeError,
            r"Equinox counterpart: LSTMCell \(eqx.nn.LSTMCell\), GRUCell "
            r"\(eqx.nn.GRUCell\); got SimpleRNNCell",
        ),
        (
            jaxrnn.GRUCell(H, reset_after=False),
            ValueError,
            r"r \* \(W_hn h \+ bias_n\).*GRUCell\(reset_after=True\)",
        ),
        (
            jaxrnn.LSTMCell(H, activation="relu"),
            ValueError,
            "always uses activation 'tanh'.*activation='relu'",
        ),
        (
            jaxrnn.GRUCell(H, recurrent_activation="hard_sigmoid"),
            ValueError,
            "recurrent_activation 'sigmoid'",
        ),
        (jaxrnn.LSTMCell(H, precision="highest"), ValueError, "precision"),
        (
            jaxrnn.LSTMCell(H, dtype="bfloat16"),
            ValueError,
            r"weights' dtype \(float32\).*dtype='bfloat16'",
        ),
    ],
)
def test_to_equinox_rejects_cells_without_a_counterpart(cell, error, match):
    with pytest.raises(error, match=match):
        to_equinox(cell, cell.init(jax.random.key(0), D))


def test_to_equinox_accepts_a_dtype_equal_to_the_params():
    cell = jaxrnn.LSTMCell(H, dtype="float32")
    to_equinox(cell, cell.init(jax.random.key(0), D))


def test_to_equinox_rejects_misshapen_params():
    cell = jaxrnn.GRUCell(H)
    params = cell.init(jax.random.key(0), D)
    params["bias"] = params["bias"][0]
    with pytest.raises(
        ValueError,
        match=r"GRUCell params\['bias'\] must "
        r"have shape \(2, 18\), got \(18,\)",
    ):
        to_equinox(cell, params)


@pytest.mark.parametrize(
    "module, error, match",
    [
        (
            eqx.nn.GRUCell(D, H, key=jax.random.key(0)),
            TypeError,
            "eqx.nn.LSTMCell instance.*got GRUCell",
        ),
        (eqx.nn.LSTMCell, TypeError, "class itself"),
        (
            eqx.nn.LSTMCell(D + 1, H, key=jax.random.key(0)),
            ValueError,
            r"input_size=5, but.*needs 4",
        ),
        (
            eqx.nn.LSTMCell(D, H + 1, key=jax.random.key(0)),
            ValueError,
            r"hidden_size=7, but LSTMCell\(units=6\) needs 6",
        ),
        (
            eqx.nn.LSTMCell(D, H, use_bias=False, key=jax.random.key(0)),
            ValueError,
            "use_bias=False, but.*needs True",
        ),
    ],
)
def test_to_equinox_rejects_templates_that_disagree(module, error, match):
    cell = jaxrnn.LSTMCell(H)
    with pytest.raises(error, match=match):
        to_equinox(cell, cell.init(jax.random.key(0), D), module)
