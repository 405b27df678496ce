"""Flax linen and NNX cells: parity of one step and a whole sequence in both
directions, round trips, and every rejected input."""

import pathlib
import subprocess
import sys

import pytest

flax = pytest.importorskip("flax")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from keras_helpers import assert_parity  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.interop import from_linen, from_nnx, to_linen, to_nnx  # noqa: E402

B, T, D, H = 3, 5, 4, 6


def _normal(shape, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)


def _randomized(tree, seed):
    """Random values for every leaf: zero biases would hide a lost bias or a
    swapped gate."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten(
        [_normal(np.shape(leaf), seed + i) for i, leaf in enumerate(leaves)]
    )


def _random_params(cell, seed):
    return _randomized(cell.init(jax.random.key(0), D), seed)


def _xs(seed=100):
    return _normal((B, T, D), seed, scale=1.0)


def _carry(is_lstm, seed=200):
    """A random batched carry in jaxrnn's order: (h, c) or h."""
    h = _normal((B, H), seed)
    return (h, _normal((B, H), seed + 1)) if is_lstm else h


def _flax_carry(carry):
    """jaxrnn's (h, c) <-> Flax's (c, h); single arrays as they are."""
    return (carry[1], carry[0]) if isinstance(carry, tuple) else carry


def _assert_same_arrays(ours, theirs):
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def _compare_runs(name, cell, params, run_step, run_sequence):
    """One step from a random carry and a whole sequence, both batched.

    run_step(flax_carry, x) -> (flax_carry, y);
    run_sequence(flax_carry, xs) -> (flax_carry, ys).
    """
    carry = _carry(isinstance(cell, jaxrnn.LSTMCell))
    x = _xs()[:, 0]
    new_carry, y = cell(params, carry, x)
    their_carry, their_y = run_step(_flax_carry(carry), x)
    assert_parity(
        f"{name}-step]",
        [y, *jax.tree.leaves(new_carry)],
        [their_y, *jax.tree.leaves(_flax_carry(their_carry))],
    )
    ys, final = jaxrnn.rnn(cell, params, _xs(), initial_carry=carry)
    their_final, their_ys = run_sequence(_flax_carry(carry), _xs())
    assert_parity(
        f"{name}-sequence]",
        [ys, *jax.tree.leaves(final)],
        [their_ys, *jax.tree.leaves(_flax_carry(their_final))],
    )


# linen


def _linen_run(module, variables):
    def step(carry, x):
        return module.apply(variables, carry, x)

    def sequence(carry, xs):
        rnn = nn.RNN(module, return_carry=True)
        return rnn.apply(
            {"params": {"cell": variables["params"]}}, xs, initial_carry=carry
        )

    return step, sequence


LINEN_MODULES = {
    "LSTMCell": lambda: nn.LSTMCell(H),
    "OptimizedLSTMCell": lambda: nn.OptimizedLSTMCell(H),
    "LSTMCell-relu-hard_sigmoid": lambda: nn.LSTMCell(
        H, activation_fn=nn.relu, gate_fn=nn.hard_sigmoid
    ),
    "GRUCell": lambda: nn.GRUCell(H),
    "SimpleCell": lambda: nn.SimpleCell(H),
    "SimpleCell-residual-gelu": lambda: nn.SimpleCell(
        H, residual=True, activation_fn=nn.gelu
    ),
}


def _linen_variables(module, seed):
    carry = module.initialize_carry(jax.random.key(0), (D,))
    return _randomized(
        module.init(jax.random.key(1), carry, jnp.zeros(D)), seed
    )


@pytest.mark.parametrize("kind", LINEN_MODULES)
def test_from_linen_matches_linen(kind):
    module = LINEN_MODULES[kind]()
    variables = _linen_variables(module, 10)
    cell, params = from_linen(module, variables)
    _compare_runs(
        f"from_linen[{kind}", cell, params, *_linen_run(module, variables)
    )


@pytest.mark.parametrize(
    "kind", [k for k in LINEN_MODULES if "residual" not in k]
)
def test_linen_round_trip_is_exact(kind):
    module = LINEN_MODULES[kind]()
    variables = _linen_variables(module, 20)
    cell, params = from_linen(module, variables["params"])  # inner dict too
    back_module, back = to_linen(cell, params, type(module))
    assert back_module == module
    _assert_same_arrays(back, jax.tree.map(jnp.asarray, variables))


def test_from_linen_maps_activations_to_keras_names():
    cell, _ = from_linen(
        nn.LSTMCell(H, gate_fn=nn.hard_sigmoid),
        _linen_variables(nn.LSTMCell(H), 0),
    )
    assert cell == jaxrnn.LSTMCell(H, recurrent_activation="hard_sigmoid")
    cell, _ = from_linen(
        nn.SimpleCell(H, activation_fn=nn.gelu),
        _linen_variables(nn.SimpleCell(H), 0),
    )
    assert cell.activation is nn.gelu  # not Keras' exact gelu: kept as is


def test_from_linen_reorders_gru_gates_and_zero_pads_the_recurrent_bias():
    module = nn.GRUCell(H)
    variables = _linen_variables(module, 30)
    _, params = from_linen(module, variables)
    p = variables["params"]
    np.testing.assert_array_equal(
        params["kernel"],
        np.concatenate(
            [p["iz"]["kernel"], p["ir"]["kernel"], p["in"]["kernel"]], axis=1
        ),
    )
    np.testing.assert_array_equal(
        params["bias"][1], np.concatenate([np.zeros(2 * H), p["hn"]["bias"]])
    )


CELLS = {
    "LSTMCell": jaxrnn.LSTMCell(H),
    "LSTMCell-nobias": jaxrnn.LSTMCell(H, use_bias=False),
    "LSTMCell-relu-hard_sigmoid": jaxrnn.LSTMCell(
        H, activation="relu", recurrent_activation="hard_sigmoid"
    ),
    "GRUCell": jaxrnn.GRUCell(H),
    "GRUCell-nobias": jaxrnn.GRUCell(H, use_bias=False),
    "SimpleRNNCell": jaxrnn.SimpleRNNCell(H),
    "SimpleRNNCell-relu": jaxrnn.SimpleRNNCell(H, activation="relu"),
}


@pytest.mark.parametrize("kind", CELLS)
def test_to_linen_matches_jaxrnn(kind):
    cell = CELLS[kind]
    params = _random_params(cell, 40)
    module, variables = to_linen(cell, params)
    _compare_runs(
        f"to_linen[{kind}", cell, params, *_linen_run(module, variables)
    )
    back_cell, back = from_linen(module, variables)
    if not isinstance(cell, jaxrnn.GRUCell) and cell.use_bias:
        assert back_cell == cell
        _assert_same_arrays(back, params)


def test_to_linen_folds_gru_gate_biases_and_keeps_the_candidate_one():
    cell = jaxrnn.GRUCell(H)
    params = _random_params(cell, 50)
    _, variables = to_linen(cell, params)
    p, bias = variables["params"], params["bias"]
    np.testing.assert_array_equal(p["iz"]["bias"], bias[0, :H] + bias[1, :H])
    np.testing.assert_array_equal(p["in"]["bias"], bias[0, 2 * H :])
    np.testing.assert_array_equal(p["hn"]["bias"], bias[1, 2 * H :])
    # Zero recurrent gate biases (what from_linen makes) round-trip exactly.
    params["bias"] = params["bias"].at[1, : 2 * H].set(0.0)
    _assert_same_arrays(from_linen(*to_linen(cell, params))[1], params)


def test_to_linen_into_a_template_and_the_optimized_class():
    cell = jaxrnn.LSTMCell(H, recurrent_activation="hard_sigmoid")
    params = _random_params(cell, 60)
    template = nn.OptimizedLSTMCell(
        H, gate_fn=nn.hard_sigmoid, param_dtype=jnp.float32
    )
    module, variables = to_linen(cell, params, template)
    assert module is template
    _compare_runs(
        "to_linen[OptimizedLSTMCell-template",
        cell,
        params,
        *_linen_run(module, variables),
    )


def test_to_linen_keeps_dtypes():
    cell = jaxrnn.SimpleRNNCell(H, dtype="bfloat16")
    module, _ = to_linen(cell, cell.init(jax.random.key(0), D))
    assert module.dtype == jnp.bfloat16 and module.param_dtype == jnp.float32
    assert from_linen(module, _linen_variables(module, 0))[0] == cell


# NNX

NNX_MODULES = {
    "LSTMCell": lambda: nnx.LSTMCell(D, H, rngs=nnx.Rngs(0)),
    "OptimizedLSTMCell": lambda: nnx.OptimizedLSTMCell(D, H, rngs=nnx.Rngs(0)),
    "GRUCell": lambda: nnx.GRUCell(D, H, rngs=nnx.Rngs(0)),
    "GRUCell-relu-hard_sigmoid": lambda: nnx.GRUCell(
        D,
        H,
        activation_fn=nnx.relu,
        gate_fn=nnx.hard_sigmoid,
        rngs=nnx.Rngs(0),
    ),
    "SimpleCell": lambda: nnx.SimpleCell(D, H, rngs=nnx.Rngs(0)),
    "SimpleCell-residual": lambda: nnx.SimpleCell(
        D, H, residual=True, rngs=nnx.Rngs(0)
    ),
}


def _randomized_nnx(module, seed):
    graphdef, state, rest = nnx.split(module, nnx.Param, ...)
    pure = _randomized(nnx.to_pure_dict(state), seed)
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state, rest)


def _nnx_run(module):
    def step(carry, x):
        return module(carry, x)

    def sequence(carry, xs):
        return nnx.RNN(module)(xs, initial_carry=carry, return_carry=True)

    return step, sequence


def _nnx_arrays(module):
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


@pytest.mark.parametrize("kind", NNX_MODULES)
def test_from_nnx_matches_nnx(kind):
    module = _randomized_nnx(NNX_MODULES[kind](), 70)
    cell, params = from_nnx(module)
    _compare_runs(f"from_nnx[{kind}", cell, params, *_nnx_run(module))


@pytest.mark.parametrize(
    "kind", [k for k in NNX_MODULES if "residual" not in k]
)
def test_nnx_round_trip_is_exact(kind):
    module = _randomized_nnx(NNX_MODULES[kind](), 80)
    cell, params = from_nnx(module)
    back = to_nnx(cell, params, type(module))
    assert type(back) is type(module)
    _assert_same_arrays(_nnx_arrays(back), _nnx_arrays(module))
    assert from_nnx(back)[0] == cell


NNX_CELLS = {k: v for k, v in CELLS.items() if k != "GRUCell"}
NNX_CELLS["GRUCell-no-candidate-bias"] = jaxrnn.GRUCell(H)


@pytest.mark.parametrize("kind", NNX_CELLS)
def test_to_nnx_matches_jaxrnn(kind):
    cell = NNX_CELLS[kind]
    params = _random_params(cell, 90)
    if "bias" in params and isinstance(cell, jaxrnn.GRUCell):
        params["bias"] = params["bias"].at[1, 2 * H :].set(0.0)
    module = to_nnx(cell, params)
    _compare_runs(f"to_nnx[{kind}", cell, params, *_nnx_run(module))
    if not isinstance(cell, jaxrnn.GRUCell) and cell.use_bias:
        back_cell, back = from_nnx(module)
        assert back_cell == cell
        _assert_same_arrays(back, params)


def test_to_nnx_fills_a_copy_of_a_template():
    template = nnx.OptimizedLSTMCell(D, H, rngs=nnx.Rngs(0))
    before = _nnx_arrays(template)
    cell = jaxrnn.LSTMCell(H)
    params = _random_params(cell, 100)
    module = to_nnx(cell, params, template)
    assert module is not template
    _assert_same_arrays(_nnx_arrays(template), before)  # left unchanged
    _compare_runs(
        "to_nnx[OptimizedLSTMCell-template", cell, params, *_nnx_run(module)
    )


# Rejections.


def test_from_linen_rejects_other_modules():
    with pytest.raises(TypeError, match="flax.linen LSTMCell.*got Dense"):
        from_linen(nn.Dense(3), {})
    with pytest.raises(TypeError, match="class itself"):
        from_linen(nn.LSTMCell, {})
    with pytest.raises(TypeError, match="use from_nnx"):
        from_linen(nnx.GRUCell(D, H, rngs=nnx.Rngs(0)), {})


def test_from_linen_rejects_another_cell_type():
    with pytest.raises(
        ValueError,
        match=r"flax.linen LSTMCell\(features=6\) "
        r"params do not fit: missing \['hf', .*unexpected "
        r"\['hn', 'hr', 'hz', 'in', 'ir', 'iz'\]",
    ):
        from_linen(nn.LSTMCell(H), _linen_variables(nn.GRUCell(H), 0))


def test_from_linen_rejects_another_size():
    with pytest.raises(
        ValueError,
        match=r"SimpleCell\(features=7\) params"
        r"\['i'\]\['kernel'\] must have shape \(4, 7\), got "
        r"\(4, 6\)",
    ):
        from_linen(nn.SimpleCell(H + 1), _linen_variables(nn.SimpleCell(H), 0))


def test_from_linen_rejects_mismatched_input_sizes_between_gates():
    variables = _linen_variables(nn.GRUCell(H), 0)
    variables["params"]["iz"]["kernel"] = jnp.zeros((D + 1, H))
    with pytest.raises(
        ValueError,
        match=r"params\['iz'\]\['kernel'\] must "
        r"have shape \(4, 6\), got \(5, 6\)",
    ):
        from_linen(nn.GRUCell(H), variables)


def test_from_linen_points_nn_rnn_params_at_the_cell():
    inner = _linen_variables(nn.GRUCell(H), 0)["params"]
    variables = {"params": {"cell": inner}}  # what nn.RNN(nn.GRUCell) holds
    with pytest.raises(ValueError, match=r"variables\['params'\]\['cell'\]"):
        from_linen(nn.GRUCell(H), variables)


@pytest.mark.parametrize(
    "variables, error, match",
    [
        ({"params": {}, "batch_stats": {}}, ValueError, "only the 'params'"),
        ([], TypeError, "params must be a dict.*list"),
        (
            {
                "i": {"kernel": jnp.zeros((D, H))},
                "h": {"kernel": jnp.zeros((H, H))},
            },
            ValueError,
            r"params\['i'\] must hold \['bias', 'kernel'\], got "
            r"\['kernel'\]",
        ),
        (
            {
                "i": {
                    "kernel": jnp.zeros((D, H), jnp.int32),
                    "bias": jnp.zeros(H),
                },
                "h": {"kernel": jnp.zeros((H, H))},
            },
            TypeError,
            "floating dtype.*int32",
        ),
    ],
)
def test_from_linen_rejects_malformed_variables(variables, error, match):
    with pytest.raises(error, match=match):
        from_linen(nn.SimpleCell(H), variables)


@pytest.mark.parametrize(
    "cell, error, match",
    [
        (
            jaxrnn.GRUCell(H, reset_after=False),
            ValueError,
            r"reset gate after.*GRUCell\(reset_after=True\)",
        ),
        (jaxrnn.LSTMCell(H, precision="highest"), ValueError, "precision"),
        (
            jaxrnn.StackedCells([jaxrnn.LSTMCell(H)]),
            TypeError,
            "counterpart.*got StackedCells",
        ),
    ],
)
def test_to_flax_rejects_cells_without_a_counterpart(cell, error, match):
    params = cell.init(jax.random.key(0), D)
    for convert in (to_linen, to_nnx):
        with pytest.raises(error, match=match):
            convert(cell, params)


def test_to_flax_rejects_misshapen_params():
    cell = jaxrnn.LSTMCell(H)
    params = cell.init(jax.random.key(0), D)
    params["recurrent_kernel"] = params["recurrent_kernel"][:, :-1]
    for convert in (to_linen, to_nnx):
        with pytest.raises(
            ValueError,
            match=r"LSTMCell params\['recurrent_"
            r"kernel'\] must have shape \(6, 24\)",
        ):
            convert(cell, params)
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        to_linen(cell, {k: v for k, v in params.items() if k != "bias"})


@pytest.mark.parametrize(
    "module, error, match",
    [
        (
            nn.GRUCell,
            TypeError,
            r"one of \['LSTMCell', 'OptimizedLSTMCell'\].*"
            "got GRUCell",
        ),
        (nn.GRUCell(H), TypeError, "instance of one of.*got GRUCell"),
        (
            nn.LSTMCell(H + 1),
            ValueError,
            r"features=7, but LSTMCell\(units=6\) "
            r"needs 6 \(units\)",
        ),
        (
            nn.LSTMCell(H, activation_fn=nn.relu),
            ValueError,
            "activation_fn=relu, but.*needs 'tanh'",
        ),
        (
            nn.LSTMCell(H, gate_fn=nn.hard_sigmoid),
            ValueError,
            "gate_fn=hard_sigmoid.*recurrent_activation",
        ),
    ],
)
def test_to_linen_rejects_templates_that_disagree(module, error, match):
    cell = jaxrnn.LSTMCell(H)
    with pytest.raises(error, match=match):
        to_linen(cell, cell.init(jax.random.key(0), D), module)


def test_to_linen_rejects_a_residual_template():
    cell = jaxrnn.SimpleRNNCell(H)
    with pytest.raises(ValueError, match="residual=True"):
        to_linen(
            cell,
            cell.init(jax.random.key(0), D),
            nn.SimpleCell(H, residual=True),
        )


def test_to_nnx_rejects_a_candidate_recurrent_bias():
    cell = jaxrnn.GRUCell(H)
    params = _random_params(cell, 110)
    with pytest.raises(
        ValueError,
        match=r"flax.nnx.GRUCell has no recurrent "
        r"bias inside the reset gate.*params\['bias'\]\[1, 2H:\]"
        r".*No exact counterpart",
    ):
        to_nnx(cell, params)
    # The recurrent z and r biases are fine: they fold into dense_i's.
    params["bias"] = params["bias"].at[1, 2 * H :].set(0.0)
    to_nnx(cell, params)


def test_to_nnx_of_a_gru_needs_concrete_params():
    cell = jaxrnn.GRUCell(H)
    params = cell.init(jax.random.key(0), D)
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda p: nnx.to_pure_dict(nnx.state(to_nnx(cell, p))))(params)


@pytest.mark.parametrize(
    "module, error, match",
    [
        (
            nnx.LSTMCell(D + 1, H, rngs=nnx.Rngs(0)),
            ValueError,
            r"in_features=5, but.*needs 4 \(params\['kernel'\] rows\)",
        ),
        (
            nnx.LSTMCell(D, H, activation_fn=nnx.relu, rngs=nnx.Rngs(0)),
            ValueError,
            "activation_fn=relu",
        ),
        (nnx.GRUCell(D, H, rngs=nnx.Rngs(0)), TypeError, "got GRUCell"),
        (
            nnx.LSTMCell(
                D, H, promote_dtype=lambda *a, **k: a, rngs=nnx.Rngs(0)
            ),
            ValueError,
            "custom promote_dtype",
        ),
    ],
)
def test_to_nnx_rejects_templates_that_disagree(module, error, match):
    cell = jaxrnn.LSTMCell(H)
    with pytest.raises(error, match=match):
        to_nnx(cell, cell.init(jax.random.key(0), D), module)


def test_from_nnx_rejects_other_modules():
    with pytest.raises(TypeError, match="flax.nnx LSTMCell.*got Linear"):
        from_nnx(nnx.Linear(D, H, rngs=nnx.Rngs(0)))
    with pytest.raises(TypeError, match="use from_linen"):
        from_nnx(nn.LSTMCell(H))


def test_from_nnx_rejects_a_custom_promote_dtype():
    module = nnx.GRUCell(
        D, H, promote_dtype=lambda *a, **k: a, rngs=nnx.Rngs(0)
    )
    with pytest.raises(ValueError, match="custom promote_dtype"):
        from_nnx(module)


def test_from_nnx_rejects_arrays_that_do_not_fit():
    module = nnx.SimpleCell(D, H, rngs=nnx.Rngs(0))
    module.dense_h.kernel = nnx.Param(jnp.zeros((H, H + 1)))
    with pytest.raises(
        ValueError,
        match=r"params\['dense_h'\]\['kernel'\] "
        r"must have shape \(6, 6\), got \(6, 7\)",
    ):
        from_nnx(module)


def test_importing_interop_imports_no_peer_library():
    code = (
        "import sys, jaxrnn.interop; "
        "loaded = {'flax', 'equinox', 'haiku'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=pathlib.Path(__file__).parents[2],
    )
