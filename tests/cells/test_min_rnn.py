"""MinGRUCell and MinLSTMCell: the paper's equations, both variants, shapes,
batching, hyperparameter and params errors.

Parallel runs: tests/test_parallel.py."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from jaxrnn import rnn
from jaxrnn.cells.min_rnn import MinGRUCell, MinLSTMCell, g, log_g

PROPERTY = settings(max_examples=15, deadline=None, derandomize=True)
CELLS = {
    "min_gru": MinGRUCell,
    "min_lstm": MinLSTMCell,
}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _g(x):
    return np.where(x >= 0, x + 0.5, _sigmoid(x))


def numpy_step(name, params, h, x, log_space):
    """One step as the paper writes it (Feng et al., 2024, Listings 2 and 4),
    in float64 NumPy, from Keras-layout params (gate order z, h / i, f, h)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    k = np.asarray(x, np.float64) @ p["kernel"] + p.get("bias", 0.0)
    candidate = _g if log_space else (lambda v: v)
    if name == "min_gru":
        k_z, k_h = np.split(k, 2, axis=-1)
        z = _sigmoid(k_z)
        return (1 - z) * h + z * candidate(k_h)
    k_i, k_f, k_h = np.split(k, 3, axis=-1)
    f, i = _sigmoid(k_f), _sigmoid(k_i)
    return f / (f + i) * h + i / (f + i) * candidate(k_h)


def numpy_log_scan(name, params, h0, xs):
    """The paper's log-space sequence model (Listings 5 and 7 with
    parallel_scan_log, Heinsen's cumsum/logcumsumexp), h0 > 0, float64."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    k = np.asarray(xs, np.float64) @ p["kernel"] + p["bias"]  # (T, H*G)

    def softplus(v):
        return np.logaddexp(0, v)

    def log_tilde_g(v):
        return np.where(v >= 0, np.log(np.maximum(v, 0) + 0.5), -softplus(-v))

    if name == "min_gru":
        k_z, k_h = np.split(k, 2, axis=-1)
        log_coeffs = -softplus(k_z)
        log_values = -softplus(-k_z) + log_tilde_g(k_h)
    else:
        k_i, k_f, k_h = np.split(k, 3, axis=-1)
        diff = softplus(-k_f) - softplus(-k_i)
        log_coeffs = -softplus(diff)
        log_values = -softplus(-diff) + log_tilde_g(k_h)
    log_values = np.concatenate([np.log(h0)[None], log_values])
    a_star = np.concatenate(
        [np.zeros_like(h0)[None], np.cumsum(log_coeffs, axis=0)]
    )
    log_h0_plus_b_star = np.logaddexp.accumulate(log_values - a_star, axis=0)
    return np.exp(a_star + log_h0_plus_b_star)[1:]


@pytest.mark.parametrize("log_space", [False, True])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_one_step_matches_the_papers_equations(name, log_space, key):
    rng = np.random.default_rng(0)
    cell = CELLS[name](5, log_space=log_space)
    params = cell.init(key, 3)
    # A random bias: the zero default would hide a bias in the wrong gate.
    params["bias"] = rng.normal(size=params["bias"].shape).astype(np.float32)
    h = rng.normal(size=(4, 5)).astype(np.float32)
    x = 2 * rng.normal(size=(4, 3)).astype(np.float32)
    new_h, y = cell(params, h, x)
    want = numpy_step(name, params, np.asarray(h, np.float64), x, log_space)
    np.testing.assert_allclose(new_h, want, atol=1e-6, rtol=1e-6)
    np.testing.assert_array_equal(y, new_h)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_log_space_sequence_matches_the_papers_log_scan(name, parallel, key):
    rng = np.random.default_rng(1)
    cell = CELLS[name](4, log_space=True)
    params = cell.init(key, 3)
    params["bias"] = rng.normal(size=params["bias"].shape).astype(np.float32)
    h0 = np.exp(rng.normal(size=4)).astype(
        np.float32
    )  # the paper's needs h0 > 0
    xs = rng.normal(size=(30, 3)).astype(np.float32)
    ys, _ = jax.jit(
        lambda p, x, h0: rnn(cell, p, x, initial_carry=h0, parallel=parallel)
    )(params, xs, h0)
    np.testing.assert_allclose(
        ys, numpy_log_scan(name, params, h0, xs), atol=1e-5, rtol=1e-5
    )


def test_g_is_positive_continuous_and_log_g_is_its_log():
    x = jnp.linspace(-40.0, 40.0, 801)
    assert bool(jnp.all(g(x) > 0))
    np.testing.assert_allclose(
        log_g(x), np.log(_g(np.asarray(x, np.float64))), atol=1e-6, rtol=1e-6
    )
    np.testing.assert_allclose(
        g(jnp.array([-1e-6, 0.0])), [0.5, 0.5], atol=1e-6
    )
    grads = jax.grad(lambda v: jnp.sum(log_g(v) + g(v)))(x)
    assert bool(jnp.all(jnp.isfinite(grads)))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_log_coefficients_are_the_logs_of_the_coefficients(name, key):
    cell = CELLS[name](4, log_space=True)
    params = cell.init(key, 3)
    xs = 3 * np.random.default_rng(2).normal(size=(7, 2, 3)).astype(np.float32)
    a, b = cell.parallel_coefficients(params, xs)
    log_a, log_b = cell.parallel_log_coefficients(params, xs)
    np.testing.assert_allclose(jnp.exp(log_a), a, rtol=1e-5)
    np.testing.assert_allclose(jnp.exp(log_b), b, rtol=1e-5)
    assert bool(jnp.all((a > 0) & (a < 1)))


@st.composite
def step_problems(draw):
    name = draw(st.sampled_from(sorted(CELLS)))
    log_space = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    features, units = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    cell = CELLS[name](units, log_space=log_space)
    # NumPy draws: jax.random would compile anew for every shape.
    rng = np.random.default_rng(seed)
    params = {
        name: rng.normal(size=shape).astype(np.float32)
        for name, shape in cell.param_shapes(features).items()
    }
    h = rng.normal(size=(batch, units)).astype(np.float32)
    x = rng.normal(size=(batch, features)).astype(np.float32)
    return cell, params, h, x


@PROPERTY
@given(step_problems())
def test_batched_step_equals_vmap_of_unbatched(problem):
    cell, params, h, x = problem
    batched = jax.jit(cell)(params, h, x)
    mapped = jax.jit(jax.vmap(cell, (None, 0, 0)))(params, h, x)
    for got, want in zip(batched, mapped):
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_step_equals_hoisted_halves_and_jits(name, key):
    cell = CELLS[name](3)
    params = cell.init(key, 2)
    h = cell.initial_carry((2,))
    x = np.random.default_rng(3).normal(size=(2, 2)).astype(np.float32)
    direct = cell(params, h, x)
    hoisted = cell.step_projected(params, h, cell.project_inputs(params, x))
    jitted = jax.jit(lambda c, p, h, x: c(p, h, x), static_argnums=0)(
        cell, params, h, x
    )
    for got in (hoisted, jitted):
        np.testing.assert_allclose(got[0], direct[0], atol=1e-6)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_init_shapes_and_no_bias(name, key):
    cell = CELLS[name](4)
    gates = 2 if name == "min_gru" else 3
    params = cell.init(key, 3)
    assert {k: v.shape for k, v in params.items()} == {
        "kernel": (3, 4 * gates),
        "bias": (4 * gates,),
    }
    assert set(CELLS[name](4, use_bias=False).init(key, 3)) == {"kernel"}
    assert cell.initial_carry((2,)).shape == (2, 4)
    assert cell.state_size == cell.output_size == 4
    bf16 = CELLS[name](4, param_dtype=jnp.bfloat16).init(key, 3)
    assert bf16["kernel"].dtype == jnp.bfloat16


def test_initializer_is_used(key):
    cell = MinGRUCell(3, kernel_initializer="ones", bias_initializer="ones")
    params = cell.init(key, 2)
    np.testing.assert_array_equal(params["kernel"], 1)
    np.testing.assert_array_equal(params["bias"], 1)
    custom = MinGRUCell(3, kernel_initializer=jax.nn.initializers.zeros)
    np.testing.assert_array_equal(custom.init(key, 2)["kernel"], 0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"units": 0}, ValueError, "units"),
        ({"units": 2.5}, TypeError, "units"),
        ({"units": 3, "log_space": 1}, TypeError, "log_space"),
        ({"units": 3, "use_bias": "yes"}, TypeError, "use_bias"),
        (
            {"units": 3, "kernel_initializer": "nope"},
            ValueError,
            "initializer",
        ),
        ({"units": 3, "param_dtype": jnp.int32}, TypeError, "param_dtype"),
    ],
)
@pytest.mark.parametrize("name", sorted(CELLS))
def test_bad_hyperparameters(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        CELLS[name](**kwargs)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_bad_params_and_inputs(name, key):
    cell = CELLS[name](3)
    params = cell.init(key, 2)
    with pytest.raises(ValueError, match="kernel"):
        cell(params, cell.initial_carry(), jnp.ones(5))
    with pytest.raises(ValueError, match="missing"):
        cell({"kernel": params["kernel"]}, cell.initial_carry(), jnp.ones(2))
    with pytest.raises(TypeError, match="floating"):
        cell(params, cell.initial_carry(), jnp.ones(2, jnp.int32))
    with pytest.raises(ValueError, match="x"):
        cell(params, cell.initial_carry(), jnp.float32(1.0))
    with pytest.raises(ValueError, match="log_space=True"):
        cell.parallel_log_coefficients(params, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="input_dim"):
        cell.init(key, 0)
