"""RGLRUCell: the paper's equations in NumPy (default run) and Google
DeepMind's recurrentgemma (CI's thorough pass installs it: its pins, numpy
< 2.4 and absl-py < 2, conflict with the test extras', so it comes with
``pip install --no-deps``), outputs, final states and gradients. The shared
checks (scan = unroll, masks, vmap, parallel = sequential, property tests)
take the cell from tests/cell_registry.py."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras_helpers import assert_parity
from properties import THOROUGH
from subsets import default_subset, only

from jaxrnn import RGLRUCell, rnn
from jaxrnn.cells.rg_lru import sqrt_bounded_gradient
from jaxrnn.interop import from_recurrentgemma, to_recurrentgemma

B, T, H = 3, 11, 8


def _perturbed(params, seed=3, scale=0.3):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        treedef,
        [
            leaf + scale * jax.random.normal(k, leaf.shape)
            for leaf, k in zip(leaves, keys)
        ],
    )


def _case(heads=2, seed=0):
    cell = RGLRUCell(H, num_heads=heads)
    params = _perturbed(cell.init(jax.random.key(seed), H))
    xs = jax.random.normal(jax.random.key(seed + 1), (B, T, H))
    h0 = jax.random.normal(jax.random.key(seed + 2), (B, H))
    return cell, params, xs, h0


def _numpy_rg_lru(params, xs, h0, heads, c=8.0):
    """Griffin's Section 2.4, step by step in float64."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    xs, h = np.asarray(xs, np.float64), np.asarray(h0, np.float64)

    def block_diagonal(x, w, b):
        blocks = x.reshape(x.shape[0], heads, -1)
        return (np.einsum("bhi,hij->bhj", blocks, w) + b).reshape(x.shape)

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    log_a_base = -np.log1p(np.exp(p["a_param"]))  # log sigmoid(-a_param)
    ys = []
    for t in range(xs.shape[1]):
        x = xs[:, t]
        r = sigmoid(block_diagonal(x, p["a_gate_kernel"], p["a_gate_bias"]))
        i = sigmoid(
            block_diagonal(x, p["input_gate_kernel"], p["input_gate_bias"])
        )
        a = np.exp(c * r * log_a_base)  # a^(c r)
        h = a * h + np.sqrt(1.0 - a**2) * (i * x)
        ys.append(h)
    return np.stack(ys, 1), h


@default_subset(only(heads=[4]))
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("heads", [1, 4])
def test_matches_the_papers_equations(parallel, heads):
    cell, params, xs, h0 = _case(heads)
    want = _numpy_rg_lru(params, xs, h0, heads)
    got = rnn(cell, params, xs, initial_carry=h0, parallel=parallel)
    assert_parity("RG-LRU paper equations", got, want)


def test_masked_steps_and_reverse_match_the_equations():
    cell, params, xs, h0 = _case()
    lengths = np.array([T, 4, 0])
    ys, h = rnn(
        cell, params, xs, initial_carry=h0, seq_lengths=lengths, parallel=True
    )
    np.testing.assert_array_equal(h[2], h0[2])  # no valid step
    for row, n in enumerate(lengths[:2]):
        want_ys, want_h = _numpy_rg_lru(
            params, xs[row : row + 1, :n], h0[row : row + 1], 2
        )
        np.testing.assert_allclose(ys[row, :n], want_ys[0], atol=1e-5)
        np.testing.assert_allclose(h[row], want_h[0], atol=1e-5)
    back, _ = rnn(cell, params, xs, go_backwards=True, keep_order=True)
    want, _ = _numpy_rg_lru(params, xs[:, ::-1], np.zeros((B, H)), 2)
    assert_parity("RG-LRU paper equations", back, want[:, ::-1])


def test_init_matches_recurrentgemmas_ring():
    cell = RGLRUCell(512, num_heads=4)
    params = cell.init(jax.random.key(0), 512)
    a = np.exp(-np.log1p(np.exp(np.asarray(params["a_param"]))))
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    # a^2 uniform on [0.81, 0.998]: mean 0.904.
    assert abs(np.mean(a**2) - (0.81 + 0.999**2) / 2) < 0.01
    std = np.std(np.asarray(params["input_gate_kernel"]))
    assert abs(std - np.sqrt(1.0 / 512)) < 0.1 * np.sqrt(1.0 / 512)
    np.testing.assert_array_equal(params["a_gate_bias"], 0.0)


def test_normaliser_gradient_is_bounded():
    grad = jax.grad(lambda x: sqrt_bounded_gradient(x, 1000.0))
    assert float(grad(0.0)) == pytest.approx(1000.0)
    assert float(grad(0.25)) == pytest.approx(1.0)


def test_gradients_stay_finite_where_a_reaches_one():
    cell, params, xs, _ = _case()
    params = dict(params, a_param=jnp.full((H,), -30.0))  # a = 1 - 1e-13
    grads = jax.grad(lambda p: jnp.sum(rnn(cell, p, xs, parallel=True)[0]))(
        params
    )
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_bfloat16_compute_stays_close():
    cell, params, xs, h0 = _case()
    bf16 = RGLRUCell(H, num_heads=2, dtype=jnp.bfloat16)
    ys, _ = rnn(bf16, params, xs, initial_carry=h0, parallel=True)
    assert ys.dtype == jnp.bfloat16
    want, _ = rnn(cell, params, xs, initial_carry=h0)
    np.testing.assert_allclose(ys.astype(np.float32), want, atol=0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(units=6, num_heads=4), "num_heads` must divide"),
        (dict(units=8, min_rad=0.999), "min_rad < max_rad"),
        (dict(units=8, max_rad=1.0), "max_rad < 1"),
        (dict(units=8, c=0), "`c` must be"),
        (dict(units=8, param_dtype="int32"), "floating dtype"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        RGLRUCell(**kwargs)


def test_inputs_of_another_width_are_refused():
    cell, params, _, _ = _case()
    with pytest.raises(ValueError, match="needs inputs with 8 features"):
        rnn(cell, params, jnp.ones((B, T, 5)))


# -- recurrentgemma ----------------------------------------------------------

HAS_RECURRENTGEMMA = importlib.util.find_spec("recurrentgemma") is not None


def _recurrentgemma():
    if not HAS_RECURRENTGEMMA and not THOROUGH:
        pytest.skip("recurrentgemma is installed by CI's thorough pass")
    from recurrentgemma.jax import layers  # a thorough run must have it

    return layers


@pytest.mark.slow
@pytest.mark.parametrize("heads", [1, 2, 8])
@pytest.mark.parametrize("parallel", [False, True])
def test_matches_recurrentgemma(heads, parallel):
    """Outputs, final state and gradients (params, inputs, initial state)
    on the same weights; positions start at 1, where recurrentgemma reads
    the state rather than resetting it."""
    _recurrentgemma()
    cell, params, xs, h0 = _case(heads)
    module, variables = to_recurrentgemma(cell, params)
    positions = jnp.broadcast_to(jnp.arange(1, T + 1), (B, T))

    def theirs(variables, xs, h0):
        ys, h = module.apply(variables, xs, positions, h0)
        return jnp.sum(ys**2) + jnp.sum(jnp.sin(h)), (ys, h)

    def ours(params, xs, h0):
        ys, h = rnn(cell, params, xs, initial_carry=h0, parallel=parallel)
        return jnp.sum(ys**2) + jnp.sum(jnp.sin(h)), (ys, h)

    (_, want), want_grads = jax.value_and_grad(theirs, (0, 1, 2), True)(
        variables, xs, h0
    )
    (_, got), got_grads = jax.value_and_grad(ours, (0, 1, 2), True)(
        params, xs, h0
    )
    assert_parity("RG-LRU recurrentgemma", got, want)
    _, theirs_as_ours = from_recurrentgemma(module, want_grads[0])
    assert_parity(
        "RG-LRU recurrentgemma grad",
        [got_grads[0][k] for k in sorted(got_grads[0])] + list(got_grads[1:]),
        [theirs_as_ours[k] for k in sorted(theirs_as_ours)]
        + list(want_grads[1:]),
        atol=1e-4,
    )


@pytest.mark.slow
def test_recurrentgemma_weights_round_trip():
    layers = _recurrentgemma()
    module = layers.RGLRU(width=H, num_heads=4)
    xs = jax.random.normal(jax.random.key(0), (B, T, H))
    positions = jnp.broadcast_to(jnp.arange(1, T + 1), (B, T))
    variables = module.init(jax.random.key(1), xs, positions)
    cell, params = from_recurrentgemma(module, variables)
    assert cell == RGLRUCell(H, num_heads=4)
    want = module.apply(variables, xs, positions)[0]
    assert_parity("RG-LRU recurrentgemma", rnn(cell, params, xs)[0], want)
    _, back = to_recurrentgemma(cell, params)
    assert jax.tree.all(
        jax.tree.map(lambda a, b: bool(jnp.all(a == b)), back, variables)
    )


def test_converter_refuses_foreign_variables():
    _, params, _, _ = _case()

    class Module:  # what from_recurrentgemma reads of an RGLRU
        width, num_heads, min_rad, w_init_variance_scale = H, 2, 0.9, 1.0
        dtype, param_dtype, only_real = None, jnp.float32, True

    tree = {
        "a_param": params["a_param"],
        "input_gate": {
            "w": params["input_gate_kernel"],
            "b": params["input_gate_bias"],
        },
        "a_gate": {"w": params["a_gate_kernel"], "b": params["a_gate_bias"]},
    }
    _, got = from_recurrentgemma(Module(), {"params": tree})
    assert set(got) == set(params)
    with pytest.raises(ValueError, match="does not know: \\['extra'\\]"):
        from_recurrentgemma(Module(), {**tree, "extra": jnp.zeros(3)})
    with pytest.raises(ValueError, match="lack a_gate/b"):
        from_recurrentgemma(
            Module(), {**tree, "a_gate": {"w": tree["a_gate"]["w"]}}
        )
    wrong = {**tree, "a_param": jnp.zeros(H + 1)}
    with pytest.raises(ValueError, match="a_param"):
        from_recurrentgemma(Module(), wrong)
    Module.only_real = False
    with pytest.raises(ValueError, match="only_real=False"):
        from_recurrentgemma(Module(), tree)
