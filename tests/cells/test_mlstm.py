"""MLSTMCell: the paper's recurrence in NumPy float64 without a stabiliser
(default run), the chunkwise form against the step-by-step one, and the
``xlstm`` package's own mLSTMCell, parallel and recurrent forms, outputs,
states and gradients (CI's thorough pass installs xlstm without its
dependencies: mlstm_kernels would pull Triton). The shared checks take the
cell from tests/cell_registry.py."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras_helpers import assert_parity, relative_to_reference
from properties import THOROUGH
from subsets import default_subset, only

from jaxrnn import MLSTMCell, rnn

B, T, D, H, NH = 3, 13, 5, 8, 2


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
# (keras_helpers.relative_to_reference): float32 gradients of tens, summed
# over every step with cancellations, agree to a relative 1e-4 (the same
# gradients in float64 agree to 6e-7).


def _case(chunk_size=4, heads=NH, seed=0):
    cell = MLSTMCell(H, num_heads=heads, chunk_size=chunk_size)
    params = _perturbed(cell.init(jax.random.key(seed), D))
    xs = jax.random.normal(jax.random.key(seed + 1), (B, T, D))
    return cell, params, xs


def _numpy_mlstm(params, xs, heads):
    """Section 2.3's recurrence, unstabilised, in float64: C = f C + i k v^T,
    n = f n + i k, h = q C / max(|q . n|, 1), then each head's layer norm."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    xs = np.asarray(xs, np.float64)
    batch, steps, _ = xs.shape
    dh = H // heads
    c = np.zeros((batch, heads, dh, dh))
    n = np.zeros((batch, heads, dh))
    outputs = []
    for t in range(steps):
        x = xs[:, t]
        q, k, v = (x @ p[f"{name}_kernel"] for name in "qkv")
        qkv = np.concatenate([q, k, v], -1)
        i = np.exp(qkv @ p["igate_kernel"] + p["igate_bias"])[..., None]
        f = 1 / (1 + np.exp(-(qkv @ p["fgate_kernel"] + p["fgate_bias"])))
        f = f[..., None]
        q, k, v = (a.reshape(batch, heads, dh) for a in (q, k, v))
        k = k / np.sqrt(dh)
        c = f[..., None] * c + i[..., None] * k[..., :, None] * v[..., None, :]
        n = f * n + i * k
        num = np.einsum("bhd,bhde->bhe", q, c)
        den = np.maximum(np.abs(np.sum(q * n, -1)), 1.0)[..., None]
        h = num / den
        mean = h.mean(-1, keepdims=True)
        var = ((h - mean) ** 2).mean(-1, keepdims=True)
        normed = ((h - mean) / np.sqrt(var + 1e-5)).reshape(batch, H)
        outputs.append(normed * p["outnorm_scale"])
    return np.stack(outputs, 1)


@default_subset(only(heads=[4]))
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("heads", [1, 4])
def test_matches_the_papers_recurrence(parallel, heads):
    cell, params, xs = _case(heads=heads)
    got, _ = rnn(cell, params, xs, parallel=parallel)
    assert_parity(
        "mLSTM paper equations", got, _numpy_mlstm(params, xs, heads)
    )


@default_subset(only(chunk_size=[5]))
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 13, 64])
def test_chunkwise_equals_step_by_step(chunk_size):
    """Any chunk size (dividing T or not, one step, all of T): outputs,
    the final (C, n, m) and gradients."""
    cell, params, xs = _case(chunk_size)
    lengths = jnp.array([T, 6, 0])

    def run(params, xs, parallel):
        ys, carry = rnn(
            cell, params, xs, seq_lengths=lengths, parallel=parallel
        )
        return jnp.sum(ys**2) + jnp.sum(carry[1]), (ys, carry)

    step = jax.value_and_grad(run, (0, 1), has_aux=True)
    (_, want), want_grads = step(params, xs, False)
    (_, got), got_grads = step(params, xs, True)
    assert_parity("mLSTM chunkwise", got, want)
    assert_parity(
        "mLSTM chunkwise grad (relative)",
        *relative_to_reference(
            jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)
        ),
        atol=1e-4,
    )


def test_stream_in_chunks_equals_one_run():
    cell, params, xs = _case(chunk_size=3)
    whole, whole_carry = rnn(cell, params, xs, parallel=True)
    first, carry = rnn(cell, params, xs[:, :5], parallel=True)
    second, carry = rnn(
        cell, params, xs[:, 5:], initial_carry=carry, parallel=True
    )
    assert_parity(
        "mLSTM chunkwise",
        (jnp.concatenate([first, second], 1), carry),
        (whole, whole_carry),
    )


def test_large_input_gates_stay_finite():
    """The stabiliser: input gates near exp(80) overflow float32 unless the
    memory is stored divided by exp(m)."""
    cell, params, xs = _case()
    params = dict(params, igate_bias=jnp.full((NH,), 80.0))
    for parallel in (False, True):
        ys, (c, _, m) = rnn(cell, params, xs, parallel=parallel)
        assert np.isfinite(ys).all() and np.isfinite(c).all()
        assert float(m.max()) > 70
    assert_parity(
        "mLSTM chunkwise",
        rnn(cell, params, xs, parallel=True),
        rnn(cell, params, xs),
        atol=1e-4,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(units=6, num_heads=4), "num_heads` must divide"),
        (dict(units=8, chunk_size=0), "chunk_size"),
        (dict(units=8, dtype="int8"), "floating dtype"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MLSTMCell(**kwargs)


def test_init_is_xlstms():
    params = MLSTMCell(16, num_heads=4).init(jax.random.key(0), 10)
    np.testing.assert_allclose(params["fgate_bias"], [3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(params["igate_kernel"], 0.0)
    np.testing.assert_array_equal(params["outnorm_scale"], 1.0)
    assert abs(np.std(params["q_kernel"]) - np.sqrt(2 / 50)) < 0.05


# -- xlstm ---------------------------------------------------------------


def _xlstm_cell(params, steps):
    if importlib.util.find_spec("xlstm") is None and not THOROUGH:
        pytest.skip("xlstm is installed by CI's thorough pass")
    import torch
    from xlstm.blocks.mlstm.cell import mLSTMCell, mLSTMCellConfig

    module = mLSTMCell(
        mLSTMCellConfig(context_length=steps, embedding_dim=H, num_heads=NH)
    )
    with torch.no_grad():
        for gate in ("igate", "fgate"):
            linear = getattr(module, gate)
            linear.weight.copy_(
                torch.tensor(np.asarray(params[f"{gate}_kernel"]).T)
            )
            linear.bias.copy_(torch.tensor(np.asarray(params[f"{gate}_bias"])))
        module.outnorm.weight.copy_(
            torch.tensor(np.asarray(params["outnorm_scale"]) - 1.0)
        )
    return module


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [False, True])
def test_matches_xlstm(parallel):
    """xlstm's mLSTMCell on the same weights, fed q, k, v from the same
    projections: its parallel form (`forward`) and its recurrent one
    (`step`), outputs, final state and the gradients of every param."""
    cell, params, xs = _case()
    params = dict(params, igate_bias=params["igate_bias"] * 0.3)
    import torch

    module = _xlstm_cell(params, T)
    kernels = {
        name: torch.tensor(
            np.asarray(params[f"{name}_kernel"]), requires_grad=True
        )
        for name in "qkv"
    }
    x = torch.tensor(np.asarray(xs))
    q, k, v = (x @ kernels[name] for name in "qkv")
    theirs = module(q, k, v)
    state = None
    steps = []
    for t in range(T):
        out, state = module.step(
            q[:, t : t + 1], k[:, t : t + 1], v[:, t : t + 1], state
        )
        steps.append(out)
    stepped = torch.cat(steps, 1)
    (theirs**2).sum().backward()
    torch_grads = {
        "q_kernel": kernels["q"].grad,
        "k_kernel": kernels["k"].grad,
        "v_kernel": kernels["v"].grad,
        "igate_kernel": module.igate.weight.grad.T,
        "igate_bias": module.igate.bias.grad,
        "fgate_kernel": module.fgate.weight.grad.T,
        "fgate_bias": module.fgate.bias.grad,
        "outnorm_scale": module.outnorm.weight.grad,
    }

    def ours(params):
        ys, carry = rnn(cell, params, xs, parallel=parallel)
        return jnp.sum(ys**2), (ys, carry)

    (_, (ys, (c, n, m))), grads = jax.value_and_grad(ours, has_aux=True)(
        params
    )
    detach = lambda t: t.detach().numpy()  # noqa: E731
    assert_parity("mLSTM xlstm", ys, detach(theirs), atol=2e-5)
    assert_parity("mLSTM xlstm", ys, detach(stepped), atol=2e-5)
    their_c, their_n, their_m = (detach(a) for a in state)
    assert_parity(
        "mLSTM xlstm state",
        (c, n, m),
        (their_c, their_n[..., 0], their_m[..., 0, 0]),
    )
    assert_parity(
        "mLSTM xlstm grad (relative)",
        *relative_to_reference(
            [grads[name] for name in sorted(torch_grads)],
            [torch_grads[name].numpy() for name in sorted(torch_grads)],
        ),
        atol=1e-4,
    )
