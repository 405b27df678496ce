"""MinGRUCell and MinLSTMCell: the paper's equations, both variants, shapes,
batching, hyperparameter and params errors; MinGRUCell against the
``minGRU-pytorch`` package's minGRU (CI's thorough pass installs it),
outputs, final states and gradients, its parallel and step paths.

Parallel runs: tests/test_parallel.py."""

import importlib.util

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from keras_helpers import assert_parity, relative_to_reference
from properties import THOROUGH

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


# -- minGRU-pytorch ------------------------------------------------------

REF_B, REF_T, REF_D = 3, 11, 4


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


# Gradients are compared relative to the reference's largest
# (keras_helpers.relative_to_reference): float32 gradients summed over every
# step and batch element run to about 150 here and agree to about 2e-5
# absolute, a relative 1e-6, so the relative comparison keeps 1e-5.


def _mingru_module(dim, expansion):
    if importlib.util.find_spec("minGRU_pytorch") is None and not THOROUGH:
        pytest.skip("minGRU-pytorch is installed by CI's thorough pass")
    from minGRU_pytorch.minGRU import minGRU

    return minGRU(dim, expansion_factor=expansion)


@pytest.mark.slow
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("expansion", [1, 2])
@pytest.mark.parametrize("parallel", [False, True])
def test_min_gru_matches_mingru_pytorch(parallel, expansion, with_h0):
    """minGRU-pytorch's minGRU on the same weights: its parallel path (the
    whole sequence, Heinsen's log-space scan) and its step path (one step
    a call, ``prev_hidden`` and ``return_next_prev_hidden``), outputs,
    final state and the gradients of every weight, from a zero state and
    from a positive one (its parallel path takes the log of
    ``prev_hidden``, so it must be > 0; jaxrnn's takes any sign).

    The mapping: minGRU is the paper's log-space variant only (candidate
    g), so ``MinGRUCell(log_space=True)``, and it has no bias, so
    ``use_bias=False``. Its ``to_hidden_and_gate`` weight (2E, D) chunks
    (candidate, gate); our kernel (D, 2E) orders (gate, candidate): ours
    is the transpose with its halves swapped. With ``expansion_factor`` 2
    minGRU runs the recurrence at E = 2D and projects back with
    ``to_out`` (no bias); a cell has no output projection, so the test
    runs ``MinGRUCell(E)`` and applies ``to_out`` to its outputs. minGRU's
    next hidden state is taken before ``to_out``, as our carry."""
    import torch

    inner = REF_D * expansion
    module = _mingru_module(REF_D, expansion)
    cell = MinGRUCell(inner, use_bias=False, log_space=True)
    kernel = _perturbed(cell.init(jax.random.key(0), REF_D))["kernel"]
    rng = np.random.default_rng(5)
    xs = rng.normal(size=(REF_B, REF_T, REF_D)).astype(np.float32)
    ours_params = {"kernel": kernel}
    if expansion != 1:
        ours_params["out_kernel"] = jnp.asarray(
            rng.normal(size=(inner, REF_D)) / np.sqrt(inner), jnp.float32
        )
    h0 = (
        np.exp(0.5 * rng.normal(size=(REF_B, inner))).astype(np.float32)
        if with_h0
        else None
    )

    def swap(w):  # (gate, candidate) <-> (candidate, gate), last axis
        return np.concatenate([w[..., inner:], w[..., :inner]], -1)

    with torch.no_grad():
        module.to_hidden_and_gate.weight.copy_(
            torch.tensor(swap(np.asarray(kernel)).T)
        )
        if expansion != 1:
            module.to_out.weight.copy_(
                torch.tensor(np.asarray(ours_params["out_kernel"]).T)
            )

    def their_grads(out):
        module.zero_grad()
        (out**2).sum().backward()
        grads = {"kernel": swap(module.to_hidden_and_gate.weight.grad.T)}
        if expansion != 1:
            grads["out_kernel"] = module.to_out.weight.grad.T
        return {k: np.asarray(v) for k, v in grads.items()}

    x = torch.tensor(xs)
    prev = None if h0 is None else torch.tensor(h0[:, None])
    whole, whole_h = module(x, prev, return_next_prev_hidden=True)
    whole_grads = their_grads(whole)
    hidden, steps = prev, []
    for t in range(REF_T):
        out, hidden = module(
            x[:, t : t + 1], hidden, return_next_prev_hidden=True
        )
        steps.append(out)
    stepped = torch.cat(steps, 1)
    stepped_grads = their_grads(stepped)

    def ours(p):
        ys, h = rnn(
            cell,
            {"kernel": p["kernel"]},
            xs,
            initial_carry=h0,
            parallel=parallel,
        )
        if "out_kernel" in p:
            ys = ys @ p["out_kernel"]
        return jnp.sum(ys**2), (ys, h)

    (_, (ys, h)), grads = jax.value_and_grad(ours, has_aux=True)(ours_params)
    detach = lambda t: t.detach().numpy()  # noqa: E731
    names = sorted(grads)
    for theirs, their_h, their_grads_ in (
        (whole, whole_h, whole_grads),
        (stepped, hidden, stepped_grads),
    ):
        assert_parity("minGRU minGRU-pytorch", ys, detach(theirs))
        assert_parity("minGRU minGRU-pytorch state", h, detach(their_h)[:, 0])
        assert_parity(
            "minGRU minGRU-pytorch grad (relative)",
            *relative_to_reference(
                [grads[n] for n in names], [their_grads_[n] for n in names]
            ),
        )
