"""LRUCell: the paper's equations and forward pass, stability, the ring
initialisation's statistics, batching, errors; against the ``LRU-pytorch``
package's LRU (CI's thorough pass installs it), outputs, final states and
gradients. Parallel runs: tests/test_parallel.py."""

import importlib.util
import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from keras_helpers import assert_parity, relative_to_reference
from properties import THOROUGH

from jaxrnn import rnn
from jaxrnn.cells.lru import LRUCell

PROPERTY = settings(max_examples=10, deadline=None, derandomize=True)


def numpy_lambda(params):
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    return np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))


def numpy_forward(params, xs, h0=None):
    """The paper's forward_LRU (Orvieto et al., 2023, Appendix A) as a
    complex128 loop; its B (N, H) and C (H, N) are our B.T and C.T."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    lam = numpy_lambda(params)
    b_norm = (p["B_re"] + 1j * p["B_im"]).T * np.exp(p["gamma_log"])[:, None]
    c = (p["C_re"] + 1j * p["C_im"]).T
    h = np.zeros(lam.shape, complex) if h0 is None else h0
    ys = []
    for u in np.asarray(xs, np.float64):
        h = lam * h + b_norm @ u
        ys.append((c @ h).real + p["D"] * u)
    return np.stack(ys), h


def test_one_step_matches_the_papers_equations(key):
    rng = np.random.default_rng(0)
    cell = LRUCell(3, state_units=5, r_min=0.4, r_max=0.95)
    params = cell.init(key, 3)
    h_re, h_im = rng.normal(size=(2, 5)).astype(np.float32)
    x = rng.normal(size=3).astype(np.float32)
    (new_re, new_im), y = cell(params, (h_re, h_im), x)
    want_y, want_h = numpy_forward(
        params, x[None], np.asarray(h_re) + 1j * np.asarray(h_im)
    )
    np.testing.assert_allclose(new_re, want_h.real, atol=1e-6)
    np.testing.assert_allclose(new_im, want_h.imag, atol=1e-6)
    np.testing.assert_allclose(y, want_y[0], atol=1e-5)


@pytest.mark.parametrize("parallel", [False, True])
def test_sequence_matches_the_papers_forward(parallel, key):
    cell = LRUCell(3, state_units=5, r_min=0.9, r_max=0.999, max_phase=0.6)
    params = cell.init(key, 3)
    xs = np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32)
    ys, (h_re, h_im) = jax.jit(
        lambda p, x: rnn(cell, p, x, parallel=parallel)
    )(params, xs)
    want_ys, want_h = numpy_forward(params, xs)
    np.testing.assert_allclose(ys, want_ys, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(h_re, want_h.real, atol=2e-5)
    np.testing.assert_allclose(h_im, want_h.imag, atol=2e-5)


@pytest.mark.parametrize(
    "r_min, r_max, max_phase",
    [(0.0, 1.0, 2 * math.pi), (0.9, 0.999, math.pi / 10), (0.5, 0.6, 1.0)],
)
def test_init_statistics(r_min, r_max, max_phase, key):
    n, h = 2000, 64
    cell = LRUCell(
        h, state_units=n, r_min=r_min, r_max=r_max, max_phase=max_phase
    )
    params = cell.init(key, h)
    lam = np.asarray(cell.eigenvalues(params), np.complex128)
    modulus_sq, phase = np.abs(lam) ** 2, np.angle(lam) % (2 * np.pi)
    assert np.all(np.abs(lam) < 1)
    assert np.all(np.abs(lam) >= r_min - 1e-6)
    assert np.all(np.abs(lam) <= r_max + 1e-6)
    # |lambda|^2 uniform on [r_min^2, r_max^2]: uniform on the ring's area.
    lo, hi = r_min**2, r_max**2
    np.testing.assert_allclose(
        modulus_sq.mean(),
        (lo + hi) / 2,
        atol=4 * (hi - lo) / math.sqrt(12 * n),
    )
    np.testing.assert_allclose(
        np.exp(np.asarray(params["theta_log"])).mean(),
        max_phase / 2,
        atol=4 * max_phase / math.sqrt(12 * n),
    )
    theta = np.exp(np.asarray(params["theta_log"]))
    assert np.all(theta <= max_phase * (1 + 1e-6))
    if max_phase < 2 * np.pi:
        assert np.all(phase <= max_phase + 1e-5)
    # gamma = sqrt(1 - |lambda|^2), from nu_log in float64: 1 - |lambda|^2 of
    # the float32 lambda is ill-conditioned near the unit circle.
    nu = np.exp(np.asarray(params["nu_log"], np.float64))
    np.testing.assert_allclose(
        np.exp(np.asarray(params["gamma_log"])),
        np.sqrt(-np.expm1(-2 * nu)),
        rtol=1e-4,
    )
    stds = {
        name: np.asarray(params[name]).std()
        for name in ("B_re", "B_im", "C_re", "C_im", "D")
    }
    for name in ("B_re", "B_im"):
        np.testing.assert_allclose(stds[name], 1 / math.sqrt(2 * h), rtol=0.05)
    for name in ("C_re", "C_im"):
        np.testing.assert_allclose(stds[name], 1 / math.sqrt(n), rtol=0.05)
    np.testing.assert_allclose(stds["D"], 1.0, rtol=0.5)


def test_gamma_keeps_the_state_at_the_inputs_scale(key):
    """With gamma = sqrt(1 - |lambda|^2), white noise in gives E|h|^2 of the
    order of E|Bu|^2 however close |lambda| is to 1 (the paper's reason)."""
    cell = LRUCell(8, state_units=64, r_min=0.99, r_max=0.999)
    params = cell.init(key, 8)
    xs = np.random.default_rng(2).normal(size=(4000, 8)).astype(np.float32)
    _, (h_re, h_im) = jax.jit(lambda p, x: rnn(cell, p, x, parallel=True))(
        params, xs
    )
    power = float(jnp.mean(h_re**2 + h_im**2))
    assert 0.3 < power < 3.0


@PROPERTY
@given(st.floats(-20.0, 10.0), st.floats(-10.0, 3.0))
def test_eigenvalues_never_leave_the_unit_disc(nu_log, theta_log):
    cell = LRUCell(3, state_units=5)
    params = cell.init(jax.random.key(0), 3)
    params["nu_log"] = np.full((5,), nu_log, np.float32)
    params["theta_log"] = np.full((5,), theta_log, np.float32)
    assert bool(jnp.all(jnp.abs(cell.eigenvalues(params)) <= 1.0))


def test_init_keeps_float32_moduli_below_one(key):
    params = LRUCell(4, state_units=20000, r_min=0.999999).init(key, 4)
    modulus = jnp.exp(-jnp.exp(params["nu_log"]))
    assert bool(jnp.all(modulus < 1)) and bool(
        jnp.all(jnp.isfinite(params["gamma_log"]))
    )


@st.composite
def step_problems(draw):
    batch, units, state = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 5)),
    )
    seed = draw(st.integers(0, 2**16))
    cell = LRUCell(units, state_units=state)
    # NumPy draws: jax.random would compile anew for every shape. Any real
    # params are valid (|lambda| < 1 whatever nu_log), so draw them all.
    rng = np.random.default_rng(seed)
    params = {
        name: rng.normal(size=shape).astype(np.float32)
        for name, shape in cell.param_shapes(units).items()
    }
    carry = tuple(rng.normal(size=(2, batch, state)).astype(np.float32))
    x = rng.normal(size=(batch, units)).astype(np.float32)
    return cell, params, carry, x


@PROPERTY
@given(step_problems())
def test_batched_step_equals_vmap_of_unbatched(problem):
    cell, params, carry, x = problem
    batched = jax.jit(cell)(params, carry, x)
    mapped = jax.jit(jax.vmap(cell, (None, 0, 0)))(params, carry, x)
    for got, want in zip(jax.tree.leaves(batched), jax.tree.leaves(mapped)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_carry_is_a_real_pair_and_state_round_trips():
    cell = LRUCell(3, state_units=2)
    carry = cell.initial_carry((4,))
    assert len(carry) == 2 and all(
        c.shape == (4, 2) and c.dtype == jnp.float32 for c in carry
    )
    assert cell.state_size == (2, 2) and cell.output_size == 3
    pair = tuple(
        np.random.default_rng(3).normal(size=(2, 4, 2)).astype(np.float32)
    )
    back = cell.state_to_carry(cell.carry_to_state(pair))
    for got, want in zip(back, pair):
        np.testing.assert_array_equal(got, want)


def test_step_equals_hoisted_halves_and_jits(key):
    cell = LRUCell(3, state_units=5)
    params = cell.init(key, 3)
    carry = cell.initial_carry((2,))
    x = np.random.default_rng(4).normal(size=(2, 3)).astype(np.float32)
    direct = cell(params, carry, x)
    hoisted = cell.step_projected(
        params, carry, cell.project_inputs(params, x)
    )
    jitted = jax.jit(lambda c, p, h, x: c(p, h, x), static_argnums=0)(
        cell, params, carry, x
    )
    for got in (hoisted, jitted):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(direct)):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_init_shapes(key):
    params = LRUCell(3, state_units=5).init(key, 3)
    assert {k: v.shape for k, v in params.items()} == {
        "nu_log": (5,),
        "theta_log": (5,),
        "gamma_log": (5,),
        "B_re": (3, 5),
        "B_im": (3, 5),
        "C_re": (5, 3),
        "C_im": (5, 3),
        "D": (3,),
    }
    assert LRUCell(3).init(key, 3)["B_re"].shape == (3, 3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"units": 0}, ValueError, "units"),
        ({"units": 2, "state_units": 0}, ValueError, "state_units"),
        ({"units": 2, "state_units": 1.5}, TypeError, "state_units"),
        (
            {"units": 2, "r_min": 0.9, "r_max": 0.9},
            ValueError,
            "r_min < r_max",
        ),
        ({"units": 2, "r_max": 1.5}, ValueError, "r_max <= 1"),
        ({"units": 2, "r_min": -0.1}, ValueError, "0 <= r_min"),
        ({"units": 2, "r_min": "0"}, TypeError, "r_min"),
        ({"units": 2, "max_phase": 0.0}, ValueError, "max_phase"),
        ({"units": 2, "param_dtype": jnp.int32}, TypeError, "param_dtype"),
    ],
)
def test_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        LRUCell(**kwargs)


def test_bad_params_and_inputs(key):
    cell = LRUCell(3, state_units=4)
    params = cell.init(key, 3)
    with pytest.raises(ValueError, match="needs inputs with 3 features"):
        cell.init(key, 2)
    with pytest.raises(ValueError, match="needs inputs with 3 features"):
        cell(params, cell.initial_carry(), jnp.ones(2))
    with pytest.raises(ValueError, match="needs inputs with 3 features"):
        rnn(cell, params, jnp.ones((2, 5, 2)), parallel=True)
    bad = dict(params, C_re=params["C_re"][:, :2])
    with pytest.raises(ValueError, match="C_re"):
        cell(bad, cell.initial_carry(), jnp.ones(3))
    with pytest.raises(TypeError, match="floating"):
        cell(params, cell.initial_carry(), jnp.ones(3, jnp.int32))


# -- LRU-pytorch ---------------------------------------------------------

REF_B, REF_T, REF_H, REF_N = 3, 12, 4, 6


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
# step and batch element run to about 350 here and agree to about 6e-5
# absolute, a relative 1e-6, so the relative comparison keeps 1e-5.


def _lru_module(features, state_features):
    if importlib.util.find_spec("LRU_pytorch") is None and not THOROUGH:
        pytest.skip("LRU-pytorch is installed by CI's thorough pass")
    from LRU_pytorch.LRU import LRU

    class Recorded(LRU):
        """LRU-pytorch's LRU, recording what its forward assigns to
        ``self.state``: it returns outputs only and resets the state to
        zeros after each sequence, so a sequence's final state is the
        assignment just before that reset."""

        @property
        def state(self):
            return self.__dict__["_state"]

        @state.setter
        def state(self, value):
            self.__dict__.setdefault("assigned", []).append(value)
            self.__dict__["_state"] = value

    return Recorded(features, features, state_features)


def _run_lru_module(module, x, h0):
    """(outputs (B, T, H), final states (B, N) complex) of LRU-pytorch's
    loop. From zeros, the batched (3-D) path in one call; from `h0`, one
    sequence a call (its 2-D path), as the 3-D path starts only the
    batch's first sequence from ``state`` and the others from zeros."""
    import torch

    steps = x.shape[1]
    if h0 is None:
        module.assigned.clear()
        ys = module(x)
        # The entry state, then per sequence `steps` states and a reset.
        return ys, torch.stack(module.assigned[steps :: steps + 1])
    ys, finals = [], []
    for sequence, state in zip(x, h0):
        module.assigned.clear()
        ys.append(module(sequence, state))
        finals.append(module.assigned[-2])
    return torch.stack(ys), torch.stack(finals)


@pytest.mark.slow
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_matches_lru_pytorch(parallel, with_h0):
    """LRU-pytorch's LRU on the same weights (it has one form, a step
    loop), from a zero state and from a random complex one: outputs,
    final state and the gradients of every weight.

    The mapping: nu_log, theta_log and gamma_log are the same (N,)
    vectors, lambda the same ``exp(-exp(nu_log) + i exp(theta_log))``,
    the input term the same ``gamma * (B x)``. Its complex B (N, H) and
    C (H, N) are ``B_re + i B_im`` and ``C_re + i C_im`` transposed, and
    its gradient of a complex parameter is ``dL/dRe + i dL/dIm``, so
    ours are its real and imaginary parts, transposed.

    What differs: LRU-pytorch's skip ``D`` is a dense matrix (out, in),
    ``y = Re(C h) + D x``, where ours is the paper's diagonal ``D * x``
    (so jaxrnn also needs in = out = units, where LRU-pytorch allows
    in != out). The test reproduces the dense skip around our cell: the
    cell gets D's diagonal, and its off-diagonal part is applied to the
    inputs outside, so the gradient of D's diagonal is our cell's."""
    import torch

    module = _lru_module(REF_H, REF_N)
    cell = LRUCell(REF_H, state_units=REF_N, r_min=0.5, r_max=0.95)
    params = _perturbed(cell.init(jax.random.key(0), REF_H))
    rng = np.random.default_rng(7)
    dense_d = (rng.normal(size=(REF_H, REF_H)) / np.sqrt(REF_H)).astype(
        np.float32
    )
    np.fill_diagonal(dense_d, np.asarray(params["D"]))
    params = dict(params, D=jnp.asarray(dense_d))
    xs = rng.normal(size=(REF_B, REF_T, REF_H)).astype(np.float32)
    h0 = (
        tuple(rng.normal(size=(2, REF_B, REF_N)).astype(np.float32))
        if with_h0
        else None
    )

    def complex_t(re, im):  # ours (in, out) -> LRU-pytorch's (out, in)
        return torch.complex(
            torch.tensor(np.asarray(re).T), torch.tensor(np.asarray(im).T)
        )

    with torch.no_grad():
        for name in ("nu_log", "theta_log", "gamma_log", "D"):
            getattr(module, name).copy_(torch.tensor(np.asarray(params[name])))
        module.B.copy_(complex_t(params["B_re"], params["B_im"]))
        module.C.copy_(complex_t(params["C_re"], params["C_im"]))
    theirs, their_h = _run_lru_module(
        module,
        torch.tensor(xs),
        None if h0 is None else torch.complex(*map(torch.tensor, h0)),
    )
    (theirs**2).sum().backward()
    torch_grads = {
        name: getattr(module, name).grad
        for name in ("nu_log", "theta_log", "gamma_log", "D")
    }
    for name in ("B", "C"):
        grad = getattr(module, name).grad
        torch_grads[f"{name}_re"] = grad.real.T
        torch_grads[f"{name}_im"] = grad.imag.T

    off_diagonal = 1.0 - jnp.eye(REF_H, dtype=jnp.float32)

    def ours(p):
        cell_params = dict(p, D=jnp.diagonal(p["D"]))
        ys, carry = rnn(
            cell, cell_params, xs, initial_carry=h0, parallel=parallel
        )
        ys = ys + xs @ (p["D"] * off_diagonal).T
        return jnp.sum(ys**2), (ys, carry)

    (_, (ys, (h_re, h_im))), grads = jax.value_and_grad(ours, has_aux=True)(
        params
    )
    detach = lambda t: t.detach().numpy()  # noqa: E731
    assert_parity("LRU LRU-pytorch", ys, detach(theirs))
    assert_parity(
        "LRU LRU-pytorch state",
        (h_re, h_im),
        (detach(their_h.real), detach(their_h.imag)),
    )
    names = sorted(torch_grads)
    assert_parity(
        "LRU LRU-pytorch grad (relative)",
        *relative_to_reference(
            [grads[name] for name in names],
            [torch_grads[name].numpy() for name in names],
        ),
    )
