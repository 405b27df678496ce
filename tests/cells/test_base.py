"""What every built-in cell shares: Keras step parity, batching, validation."""

import dataclasses

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from cell_registry import BY_NAME, make, names
from keras_helpers import (
    assert_parity,
    params_from_keras,
    randomize_keras_weights,
)

import jaxrnn

CELLS = [
    ("SimpleRNNCell", {}),
    ("SimpleRNNCell", {"activation": "relu", "use_bias": False}),
    ("LSTMCell", {}),
    ("LSTMCell", {"recurrent_activation": "hard_sigmoid"}),
    ("GRUCell", {}),
    ("GRUCell", {"reset_after": False}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CELLS]


def _carry_as_keras_states(carry):
    return list(carry) if isinstance(carry, tuple) else [carry]


@pytest.mark.parametrize("name,kwargs", CELLS, ids=IDS)
def test_one_step_matches_keras(name, kwargs, request):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype("float32")
    theirs_cell = getattr(keras.layers, name)(5, **kwargs)
    ours = getattr(jaxrnn, name)(5, **kwargs)
    carry = jax.tree.map(
        lambda z: rng.standard_normal(z.shape).astype("float32"),
        ours.initial_carry((4,)),
    )
    theirs_cell.build((4, 3))
    randomize_keras_weights(theirs_cell, 1)
    y_theirs, states_theirs = theirs_cell(x, _carry_as_keras_states(carry))
    params = params_from_keras(
        ours.init(jax.random.key(0), 3), theirs_cell.get_weights()
    )
    new_carry, y = ours(params, carry, jnp.asarray(x))
    assert_parity(
        request.node.name,
        [y, *jax.tree.leaves(new_carry)],
        [y_theirs, *states_theirs],
    )


@pytest.mark.parametrize("name,kwargs", CELLS, ids=IDS)
def test_sizes_match_keras(name, kwargs):
    theirs = getattr(keras.layers, name)(5, **kwargs)
    ours = getattr(jaxrnn, name)(5, **kwargs)
    assert ours.state_size == theirs.state_size
    assert ours.output_size == theirs.output_size
    theirs.build((None, 3))
    params = ours.init(jax.random.key(0), 3)
    assert {w.name: tuple(w.shape) for w in theirs.weights} == {
        k: v.shape for k, v in params.items()
    }


@pytest.mark.parametrize("name,kwargs", CELLS, ids=IDS)
def test_unbatched_and_vmap_equal_batched(name, kwargs, key):
    cell = getattr(jaxrnn, name)(5, **kwargs)
    params = cell.init(key, 3)
    x = jax.random.normal(jax.random.key(7), (4, 3))
    carry = cell.initial_carry((4,))
    batched = cell(params, carry, x)
    mapped = jax.vmap(lambda c, x: cell(params, c, x))(carry, x)
    single = cell(params, jax.tree.map(lambda a: a[1], carry), x[1])
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(mapped)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(single)):
        np.testing.assert_allclose(a[1], b, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", CELLS, ids=IDS)
def test_extra_batch_axes(name, kwargs, key):
    cell = getattr(jaxrnn, name)(5, **kwargs)
    params = cell.init(key, 3)
    x = jax.random.normal(key, (2, 4, 3))
    _carry, y = cell(params, cell.initial_carry((2, 4)), x)
    _flat_carry, flat_y = cell(
        params, cell.initial_carry((8,)), x.reshape(8, 3)
    )
    np.testing.assert_allclose(y.reshape(8, 5), flat_y, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", CELLS, ids=IDS)
def test_cell_is_hashable_static_argument(name, kwargs, key):
    cell = getattr(jaxrnn, name)(5, **kwargs)
    assert hash(cell) == hash(getattr(jaxrnn, name)(5, **kwargs))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.units = 3
    params = cell.init(key, 3)
    step = jax.jit(lambda cell, p, c, x: cell(p, c, x), static_argnums=0)
    x = jnp.ones((2, 3))
    got = step(cell, params, cell.initial_carry((2,)), x)
    want = cell(params, cell.initial_carry((2,)), x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", CELLS, ids=IDS)
def test_params_are_plain_dicts_in_param_dtype(name, kwargs, key):
    cell = getattr(jaxrnn, name)(5, param_dtype=jnp.bfloat16, **kwargs)
    params = cell.init(key, 3)
    assert type(params) is dict
    assert all(v.dtype == jnp.bfloat16 for v in params.values())


def test_feature_size_mismatch_names_the_array(key):
    cell = jaxrnn.LSTMCell(4)
    params = cell.init(key, 3)
    with pytest.raises(
        ValueError,
        match=r"params\['kernel'\] must have shape "
        r"\(5, 16\), got \(3, 16\)",
    ):
        cell(params, cell.initial_carry((2,)), jnp.ones((2, 5)))


def test_missing_param_is_named(key):
    cell = jaxrnn.GRUCell(4)
    params = cell.init(key, 3)
    del params["bias"]
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        cell(params, cell.initial_carry(), jnp.ones(3))


def test_misshaped_param_is_named(key):
    cell = jaxrnn.GRUCell(4)
    params = dict(cell.init(key, 3), bias=jnp.zeros(12))
    with pytest.raises(
        ValueError,
        match=r"params\['bias'\] must have shape "
        r"\(2, 12\)",
    ):
        cell(params, cell.initial_carry(), jnp.ones(3))


def test_unexpected_param_is_named(key):
    cell = jaxrnn.SimpleRNNCell(4, use_bias=False)
    params = dict(cell.init(key, 3), bias=jnp.zeros(4))
    with pytest.raises(ValueError, match="unexpected keys"):
        cell(params, cell.initial_carry(), jnp.ones(3))


def test_integer_inputs_rejected(key):
    cell = jaxrnn.SimpleRNNCell(4)
    with pytest.raises(TypeError, match="floating"):
        cell(cell.init(key, 3), cell.initial_carry(), jnp.ones(3, jnp.int32))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"units": -1}, ValueError, "units"),
        ({"units": True}, TypeError, "units"),
        ({"units": 4, "dropout": 1.5}, ValueError, "dropout"),
        ({"units": 4, "activation": "sigmoidd"}, ValueError, "activation"),
        (
            {"units": 4, "recurrent_initializer": "orthogonall"},
            ValueError,
            "initializer",
        ),
        ({"units": 4, "dtype": jnp.int32}, TypeError, "dtype"),
    ],
)
def test_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxrnn.LSTMCell(**kwargs)


def test_dropout_in_training_needs_a_key(key):
    cell = jaxrnn.GRUCell(4, dropout=0.5)
    with pytest.raises(ValueError, match="key"):
        cell(
            cell.init(key, 3), cell.initial_carry(), jnp.ones(3), training=True
        )


@pytest.mark.parametrize("name", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
def test_dropout_only_in_training(name, key):
    plain = getattr(jaxrnn, name)(4)
    dropped = getattr(jaxrnn, name)(4, dropout=0.5, recurrent_dropout=0.5)
    params = plain.init(key, 3)
    carry = jax.tree.map(lambda z: z + 0.5, plain.initial_carry((2,)))
    x = jnp.ones((2, 3))
    eval_out = dropped(params, carry, x, key=key)
    for a, b in zip(
        jax.tree.leaves(eval_out), jax.tree.leaves(plain(params, carry, x))
    ):
        np.testing.assert_array_equal(a, b)
    train_out = dropped(params, carry, x, key=key, training=True)
    assert not np.allclose(train_out[1], eval_out[1])


def test_dropout_masks_are_inverted_and_have_the_rate(key):
    cell = jaxrnn.LSTMCell(64, dropout=0.25, recurrent_dropout=0.75)
    masks = cell.dropout_masks(key, (512,), 32, training=True)
    assert masks.inputs.shape == (512, 32)
    assert masks.recurrent.shape == (512, 64)
    assert set(np.unique(masks.inputs)) == {0.0, np.float32(1 / 0.75)}
    np.testing.assert_allclose((masks.inputs == 0).mean(), 0.25, atol=0.01)
    np.testing.assert_allclose((masks.recurrent == 0).mean(), 0.75, atol=0.01)


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
@pytest.mark.parametrize("compute_dtype", [None, jnp.bfloat16])
def test_apply_gates_holds_the_carry_of_masked_steps(name, compute_dtype, key):
    # Held through the gates in the carry's dtype, by a select in another;
    # either way the carry of a masked row comes back exactly, whatever its
    # projections hold (NaN here), and a kept row gets the step without
    # `keep`.
    cell = getattr(jaxrnn, name)(6, dtype=compute_dtype)
    assert cell.gates_take_keep
    keys = jax.random.split(key, 4)
    params = cell.init(keys[0], 3)
    carry = jax.tree.map(
        lambda leaf: jax.random.normal(keys[1], leaf.shape),
        cell.initial_carry((4,)),
    )
    x = jax.random.normal(keys[2], (4, 3))
    dtype = compute_dtype or jnp.float32
    projected = cell.project_inputs(params, x.astype(dtype))
    recurrent = cell.project_recurrent(
        params, cell.recurrent_input(carry, None, projected.dtype)
    )
    keep = jnp.array([True, False, True, False])
    poisoned = jnp.where(keep[:, None], projected, jnp.nan)
    held, y = cell.apply_gates(carry, poisoned, recurrent, keep=keep)
    stepped, y_stepped = cell.apply_gates(carry, projected, recurrent)
    for h, s, c in zip(
        jax.tree.leaves(held),
        jax.tree.leaves(stepped),
        jax.tree.leaves(carry),
        strict=True,
    ):
        assert h.dtype == c.dtype
        np.testing.assert_array_equal(h[~keep], c[~keep])
        np.testing.assert_array_equal(h[keep], s[keep])
        assert not np.array_equal(s[~keep], c[~keep])
    np.testing.assert_array_equal(y[keep], y_stepped[keep])
    if compute_dtype is None:
        # In the carry's dtype a masked step's output is the held h: one
        # value for the carry and the output (with two, XLA:CPU split an
        # LSTM's masked step into 4 kernels instead of 2).
        held_h = jax.tree.leaves(held)[0]
        np.testing.assert_array_equal(y[~keep], held_h[~keep])


# --- What a direct step call checks (every built-in cell) --------------------


def _every_cell():
    """(cell, input features) for each built-in vector cell and stack."""
    return [
        (make(name, 3 if BY_NAME[name].features_are_units else 4), 3)
        for name in names()
    ]


EVERY_CELL = _every_cell()
EVERY_ID = names()


@pytest.mark.parametrize("cell,features", EVERY_CELL, ids=EVERY_ID)
def test_step_input_with_a_time_axis_is_refused(cell, features, key):
    # (B, 1, D) against a (B, H) carry would broadcast to (B, B, H).
    params = cell.init(key, features)
    with pytest.raises(
        ValueError,
        match=r"`carry` leaf 0 must have shape "
        r"\(2, 1(, \d)+\) for `x` of shape \(2, 1, 3\)",
    ):
        cell(params, cell.initial_carry((2,)), jnp.ones((2, 1, features)))


@pytest.mark.parametrize("cell,features", EVERY_CELL, ids=EVERY_ID)
def test_carry_of_another_batch_is_refused(cell, features, key):
    params = cell.init(key, features)
    with pytest.raises(
        ValueError,
        match=r"`carry` leaf 0 must have shape "
        r"\(\d(,|(, \d)+)\) for `x` of shape \(3,\)",
    ):
        cell(params, cell.initial_carry((2,)), jnp.ones(features))


def test_lstm_carry_must_be_the_pair(key):
    # One (2, H) array used to be unpacked into h and c, row by row.
    cell = jaxrnn.LSTMCell(4)
    with pytest.raises(
        ValueError,
        match=r"LSTMCell `carry` must have the "
        r"structure of LSTMCell.initial_carry\(\)",
    ):
        cell(cell.init(key, 3), jnp.zeros((2, 4)), jnp.ones(3))


@pytest.mark.parametrize(
    "cell",
    [
        jaxrnn.LRUCell(3),
        jaxrnn.ConvLSTM2DCell(2, 3, padding="same", spatial_shape=(5, 5)),
    ],
    ids=["LRUCell", "ConvLSTM2DCell"],
)
def test_pair_carries_must_be_pairs(cell, key):
    params = cell.init(key, 3 if isinstance(cell, jaxrnn.LRUCell) else 1)
    x = (
        jnp.ones(3)
        if isinstance(cell, jaxrnn.LRUCell)
        else jnp.ones((5, 5, 1))
    )
    with pytest.raises(ValueError, match="`carry` must have the structure"):
        cell(params, cell.initial_carry()[0], x)


def test_stacked_carry_needs_one_entry_per_cell(key):
    cell = jaxrnn.StackedCells([jaxrnn.GRUCell(4), jaxrnn.GRUCell(4)])
    with pytest.raises(ValueError, match="tuple of 2 entries"):
        cell(cell.init(key, 3), jnp.zeros(4), jnp.ones(3))


@pytest.mark.parametrize(
    "cell,features",
    [
        pytest.param(*case, marks=pytest.mark.slow)
        if name == "stacked_parallel"
        else case
        for name, case in zip(EVERY_ID, EVERY_CELL)
    ],
    ids=EVERY_ID,
)
def test_checked_steps_still_run_batched_and_under_vmap(cell, features, key):
    params = cell.init(key, features)
    x = jax.random.normal(jax.random.key(3), (2, 3, features))
    batched = cell(params, cell.initial_carry((2, 3)), x)
    mapped = jax.vmap(jax.vmap(lambda c, x: cell(params, c, x)))(
        cell.initial_carry((2, 3)), x
    )
    jax.jit(lambda p, c, x: cell(p, c, x))(
        params, cell.initial_carry((2, 3)), x
    )
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(mapped)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("cell,features", EVERY_CELL, ids=EVERY_ID)
def test_initial_carry_takes_an_int_batch_size(cell, features):
    del features
    got = jax.tree.map(jnp.shape, cell.initial_carry(4))
    assert got == jax.tree.map(jnp.shape, cell.initial_carry((4,)))


def test_conv_lstm_initial_carry_takes_an_int_batch_size():
    cell = jaxrnn.ConvLSTM2DCell(2, 3, padding="same", spatial_shape=(5, 5))
    assert cell.initial_carry(4)[0].shape == (4, 5, 5, 2)


@pytest.mark.parametrize(
    "batch_shape,error",
    [("4", TypeError), (4.0, TypeError), ((2, -1), ValueError)],
)
def test_initial_carry_refuses_other_batch_shapes(batch_shape, error):
    with pytest.raises(error, match="batch_shape"):
        jaxrnn.LSTMCell(4).initial_carry(batch_shape)


CALLABLE_CELLS = EVERY_CELL + [
    (jaxrnn.ConvLSTM2DCell(2, 3, padding="same", spatial_shape=(5, 5)), 1)
]


@pytest.mark.parametrize(
    "cell,features", CALLABLE_CELLS, ids=EVERY_ID + ["ConvLSTM2DCell"]
)
def test_call_without_params_names_the_cell(cell, features):
    name = type(cell).__name__
    with pytest.raises(
        TypeError,
        match=rf"^{name} takes \(params, carry, "
        r"x\), got 2 of them; missing \['x'\]",
    ):
        cell(cell.initial_carry(), jnp.ones(features))


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64])
@pytest.mark.parametrize("cell,features", EVERY_CELL, ids=EVERY_ID)
def test_params_of_a_non_float_dtype_are_refused(cell, features, dtype, key):
    params = cell.init(key, features)
    first = params[0] if isinstance(params, list) else params
    name = sorted(first)[0]
    first[name] = first[name].astype(dtype)
    with pytest.raises(
        TypeError,
        match=rf"params\['{name}'\] must have a "
        "floating dtype",
    ):
        cell(params, cell.initial_carry(), jnp.ones(features))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_params_of_any_float_dtype_run(dtype, key):
    cell = jaxrnn.GRUCell(4)
    params = jax.tree.map(lambda p: p.astype(dtype), cell.init(key, 3))
    _, y = cell(params, cell.initial_carry(), jnp.ones(3))
    assert y.shape == (4,)


@pytest.mark.parametrize(
    "make",
    [
        lambda: jaxrnn.LSTMCell(units=jnp.ones(300)),
        lambda: jaxrnn.LSTMCell(4).init(jax.random.key(0), np.ones((50, 70))),
    ],
)
def test_an_array_for_a_size_is_named_by_shape_not_printed(make):
    with pytest.raises(
        TypeError,
        match=r"must be a positive int, got "
        r"\w+ of shape \((300,|50, 70)\) and dtype",
    ) as info:
        make()
    assert len(str(info.value)) < 200


def test_carry_and_input_swapped_name_the_argument_order(key):
    cell = jaxrnn.LSTMCell(4)
    params, carry = cell.init(key, 3), cell.initial_carry(2)
    for call in (
        lambda: cell(params, jnp.ones((2, 3)), carry),
        lambda: cell(params, jnp.ones((2, 3)), list(carry)),
    ):
        with pytest.raises(
            TypeError,
            match=r"`x` must be one array \(\.\.\., "
            r"D\), got (tuple|list): a LSTMCell is called as "
            r"cell\(params, carry, x\)",
        ):
            call()


def test_inputs_of_another_feature_size_say_so(key):
    cell = jaxrnn.GRUCell(4)
    params = cell.init(key, 3)
    with pytest.raises(
        ValueError,
        match=r"the inputs have 5 features, but the "
        r"params were made for 3.*input_dim=5",
    ):
        cell(params, cell.initial_carry(2), jnp.ones((2, 5)))


@pytest.mark.parametrize(
    "cell",
    [
        jaxrnn.LSTMCell(4),
        jaxrnn.MinGRUCell(4),
        jaxrnn.LRUCell(4, 8),
        jaxrnn.StackedCells([jaxrnn.GRUCell(4)]),
    ],
)
def test_init_needs_a_prng_key(cell):
    with pytest.raises(
        TypeError,
        match=r"`key` must be a PRNG key such as "
        r"jax.random.key\(0\), got 0 of type int",
    ):
        cell.init(0, 4)
    assert jax.tree.leaves(cell.init(jax.random.PRNGKey(0), 4))
