"""SLSTMCell: the paper's recurrence in NumPy float64 without a stabiliser
(default run), the split-step path against plain autodiff, and the
reference implementations on the same weights (slow; CI's thorough pass
installs them without their dependencies): the ``xlstm`` package's
sLSTMCell and the ``flashrnn`` package's sLSTM, both their plain PyTorch
("vanilla") backends, outputs, final states and gradients. Masks,
reversal, streaming, vmap and the dtype checks are the shared property
tests' (tests/test_rnn.py, the cell from tests/cell_registry.py)."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras_helpers import assert_parity, perturb
from properties import THOROUGH
from subsets import default_subset, only

from jaxrnn import SLSTMCell, rnn
from jaxrnn.interop import from_xlstm, to_xlstm

B, T, D, H, NH = 3, 13, 5, 8, 2


def _case(heads=NH, seed=0):
    cell = SLSTMCell(H, num_heads=heads)
    params = perturb(cell.init(jax.random.key(seed), D), seed=seed + 3)
    params = dict(params, kernel=params["kernel"] * 3)
    xs = jax.random.normal(jax.random.key(seed + 1), (B, T, D))
    return cell, params, xs


def _numpy_slstm(params, xs, heads):
    """Section 2.2's recurrence, unstabilised, in float64: i = exp(i~),
    f = sigmoid(f~), c = f c + i tanh(z~), n = f n + i, h = o c / n, with
    block-diagonal recurrent weights."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    xs = np.asarray(xs, np.float64)
    batch, steps, _ = xs.shape
    dh = H // heads
    recurrent = np.zeros((H, 4 * H))  # the dense block-diagonal matrix
    for k in range(heads):
        block = p["recurrent_kernel"][k].reshape(dh, 4, dh)
        for g in range(4):
            recurrent[
                k * dh : (k + 1) * dh,
                g * H + k * dh : g * H + (k + 1) * dh,
            ] = block[:, g]
    h, c, n = (np.zeros((batch, H)) for _ in range(3))
    outputs = []
    for t in range(steps):
        raw = xs[:, t] @ p["kernel"] + h @ recurrent + p["bias"]
        i_raw, f_raw, z_raw, o_raw = np.split(raw, 4, -1)
        i, f = np.exp(i_raw), 1 / (1 + np.exp(-f_raw))
        c = f * c + i * np.tanh(z_raw)
        n = f * n + i
        h = c / n / (1 + np.exp(-o_raw))
        outputs.append(h)
    return np.stack(outputs, 1), (h, c, n)


@default_subset(only(heads=[2]))
@pytest.mark.parametrize("unroll", [1, True])
@pytest.mark.parametrize("heads", [1, 2, 8])
def test_matches_the_papers_recurrence(unroll, heads):
    """Outputs, and the carry's h, c and n once unscaled by exp(m)."""
    cell, params, xs = _case(heads=heads)
    got, (h, c, n, m) = rnn(cell, params, xs, unroll=unroll)
    want, (want_h, want_c, want_n) = _numpy_slstm(params, xs, heads)
    scale = np.exp(np.asarray(m, np.float64))
    assert_parity("sLSTM paper equations", got, want)
    assert_parity("sLSTM paper equations", h, want_h)
    assert_parity(
        "sLSTM paper equations (relative)",
        (c * scale / want_n, n * scale / want_n),
        (want_c / want_n, np.ones_like(want_n)),
    )


def test_split_step_gradients_equal_autodiff_of_the_loop():
    """`rnn`'s hand-written backward pass (the split step) against JAX's
    autodiff of the unrolled Python loop, masked rows included."""
    cell, params, xs = _case()
    lengths = jnp.array([T, 6, 0])

    def loss(params, xs, unroll):
        ys, (_, c, n, _) = rnn(
            cell, params, xs, seq_lengths=lengths, unroll=unroll
        )
        return jnp.sum(ys**2) + jnp.sum(c / n)

    want = jax.grad(loss, (0, 1))(params, xs, True)
    got = jax.grad(loss, (0, 1))(params, xs, 1)
    assert_parity(
        "sLSTM split-step grad",
        jax.tree.leaves(got),
        jax.tree.leaves(want),
        atol=1e-4,
    )


def test_large_gate_inputs_stay_finite():
    """The stabiliser: input gates near exp(90) overflow float32 unless c
    and n are stored divided by exp(m)."""
    cell, params, xs = _case()
    bias = params["bias"].at[:H].set(90.0)
    ys, (_, c, n, m) = rnn(cell, dict(params, bias=bias), xs)
    assert np.isfinite(ys).all() and np.isfinite(c).all()
    assert np.isfinite(n).all() and float(m.max()) > 80
    assert float(jnp.abs(ys).max()) <= 1.0  # |h| = |o tanh-average| <= 1


def test_a_stream_in_chunks_equals_one_run():
    cell, params, xs = _case()
    whole, whole_carry = rnn(cell, params, xs)
    first, carry = rnn(cell, params, xs[:, :5])
    second, carry = rnn(cell, params, xs[:, 5:], initial_carry=carry)
    assert_parity(
        "sLSTM stream",
        (jnp.concatenate([first, second], 1), carry),
        (whole, whole_carry),
    )


def test_bfloat16_compute_stays_near_float32():
    cell, params, xs = _case()
    want, _ = rnn(cell, params, xs)
    fast = SLSTMCell(H, num_heads=NH, dtype="bfloat16")
    got, carry = rnn(fast, params, xs)
    assert got.dtype == jnp.bfloat16 and carry[1].dtype == jnp.bfloat16
    assert float(jnp.abs(got.astype(jnp.float32) - want).max()) < 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(units=6, num_heads=4), "num_heads` must divide"),
        (dict(units=0), "units"),
        (dict(units=8, param_dtype="int32"), "floating dtype"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SLSTMCell(**kwargs)


def test_params_of_the_wrong_layout_are_named():
    cell = SLSTMCell(8, num_heads=2)
    params = cell.init(jax.random.key(0), 3)
    dense = dict(params, recurrent_kernel=jnp.zeros((8, 32)))
    with pytest.raises(ValueError, match="recurrent_kernel"):
        cell(dense, cell.initial_carry(2), jnp.ones((2, 3)))


def test_init_is_xlstms():
    params = SLSTMCell(16, num_heads=4).init(jax.random.key(0), 10)
    np.testing.assert_array_equal(params["recurrent_kernel"], 0.0)
    i, f, z, o = np.split(np.asarray(params["bias"]), 4)
    for gate in (i, z, o):
        np.testing.assert_array_equal(gate, 0.0)
    # xlstm's powerlaw_blockdependent forget bias, per head of 4 units.
    head = -(-5.0 + 12.0 * (np.arange(4) / 3) ** 0.3)
    np.testing.assert_allclose(f, np.tile(head, 4), rtol=1e-6)
    assert abs(np.std(params["kernel"]) - np.sqrt(2 / 50)) < 0.05


# -- xlstm and flashrnn --------------------------------------------------


def _require(package):
    if importlib.util.find_spec(package) is None and not THOROUGH:
        pytest.skip(f"{package} is installed by CI's thorough pass")


def _torch_inputs(params, xs):
    import torch

    kernel = torch.tensor(np.asarray(params["kernel"]), requires_grad=True)
    return kernel, torch.tensor(np.asarray(xs)) @ kernel


def _their_grads(module, kernel, heads):
    return {
        "kernel": kernel.grad.numpy(),
        "recurrent_kernel": module._recurrent_kernel_int2ext(
            module._recurrent_kernel_.grad
        )
        .reshape(heads, H // heads, 4 * H // heads)
        .numpy(),
        "bias": module._bias_int2ext(module._bias_.grad)
        .permute(1, 0, 2)
        .reshape(-1)
        .numpy(),
    }


def _ours(cell, params, xs, initial_carry=None):
    def loss(params):
        ys, carry = rnn(cell, params, xs, initial_carry=initial_carry)
        return jnp.sum(ys**2), (ys, carry)

    (_, (ys, carry)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return ys, carry, grads


@pytest.mark.slow
@default_subset(only(heads=[2]))
@pytest.mark.parametrize("carried", [False, True])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_matches_xlstm(heads, carried):
    """xlstm's sLSTMCell (vanilla backend) fed ``x @ kernel``: outputs,
    the final (h, c, n, m) and the gradients of every param, from a zero
    state or from the state a first run left (a stream's second chunk),
    through `to_xlstm`'s module and back through `from_xlstm`."""
    _require("xlstm")
    import torch

    cell, params, xs = _case(heads=heads)
    carry0 = None
    if carried:
        prefix = jax.random.normal(jax.random.key(7), (B, 5, D))
        _, carry0 = rnn(cell, params, prefix)
    module, _ = to_xlstm(cell, params)
    kernel, projected = _torch_inputs(params, xs)
    state0 = None if carry0 is None else torch.tensor(np.stack(carry0))
    theirs, state = module(projected, state0)  # (B, NH, T, DH)
    (theirs**2).sum().backward()
    theirs = theirs.detach().permute(0, 2, 1, 3).reshape(B, T, H).numpy()
    ys, carry, grads = _ours(cell, params, xs, carry0)
    assert_parity("sLSTM xlstm", ys, theirs)
    assert_parity("sLSTM xlstm state", carry, tuple(state.detach().numpy()))
    assert_parity(
        "sLSTM xlstm grad",
        jax.tree.leaves(grads),
        jax.tree.leaves(_their_grads(module, kernel, heads)),
        atol=1e-4,
    )
    back_cell, back = from_xlstm(module, params["kernel"])
    assert back_cell == cell
    assert_parity(
        "sLSTM from_xlstm",
        jax.tree.leaves(back),
        jax.tree.leaves(params),
        atol=0,
    )


@pytest.mark.slow
def test_matches_flashrnn():
    """flashrnn's sLSTM (vanilla backend, the same weights in its ``HPGD``
    recurrent layout): outputs and final states. flashrnn floors n at 1
    where xlstm clips the gates at 1: from a zero carry n never falls
    below 1, so the two compute the same numbers."""
    _require("flashrnn")
    import torch
    from flashrnn.flashrnn.flashrnn import (  # pyright: ignore[reportMissingImports]
        FlashRNNConfig,
        flashrnn,
    )

    cell, params, xs = _case()
    dh = H // NH
    _, projected = _torch_inputs(params, xs)
    config = FlashRNNConfig(
        backend="vanilla",
        function="slstm",
        num_heads=NH,
        head_dim=dh,
        hidden_dim=H,
        recurrent_shape="HPGD",
        bias_shape="GHD",
        dtype="float32",
        batch_size=B,
    )
    states, last = flashrnn(
        projected.reshape(B, T, 4, NH, dh),
        torch.tensor(
            np.asarray(params["recurrent_kernel"]).reshape(NH, dh, 4, dh)
        ),
        torch.tensor(np.asarray(params["bias"]).reshape(4, NH, dh)),
        function="slstm",
        config=config,
    )
    ys, carry = rnn(cell, params, xs)
    assert_parity(
        "sLSTM flashrnn", ys, states[0].reshape(B, T, H).detach().numpy()
    )
    assert_parity(
        "sLSTM flashrnn state",
        carry,
        tuple(last[:, :, 0].reshape(4, B, H).detach().numpy()),
    )
