"""rnn(): what it refuses and says, and the edge cases it must run (an
empty batch, forward-mode differentiation)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_registry import make, names
from subsets import default_subset, only

import jaxrnn
from jaxrnn import rnn

SPLIT_STEP = names(split=True)


def _problem(name, batch=2, steps=6, features=2):
    cell = make(name, 3)
    params = cell.init(jax.random.key(0), features)
    x = jax.random.normal(jax.random.key(1), (batch, steps, features))
    return cell, params, x


# --- seq_lengths out of range -----------------------------------------------


@pytest.mark.parametrize("lengths", [[-1, 3], [2, 7]])
def test_concrete_seq_lengths_outside_0_to_T_are_refused(lengths):
    cell, params, x = _problem("lstm")
    with pytest.raises(
        ValueError,
        match=r"`seq_lengths` must lie in "
        r"\[0, T\] = \[0, 6\]",
    ):
        rnn(cell, params, x, seq_lengths=jnp.array(lengths))


def test_seq_lengths_at_the_bounds_run():
    cell, params, x = _problem("lstm")
    ys, _ = rnn(cell, params, x, seq_lengths=np.array([0, 6]))
    np.testing.assert_array_equal(ys[0], 0)


def test_traced_seq_lengths_act_clamped_as_documented():
    # Under jit the values are unknown at trace time: below 0 runs as 0,
    # above T as T (the rnn docstring).
    cell, params, x = _problem("gru")
    run = jax.jit(lambda p, x, n: rnn(cell, p, x, seq_lengths=n))
    np.testing.assert_allclose(
        run(params, x, jnp.array([-2, 9]))[0],
        rnn(cell, params, x, seq_lengths=jnp.array([0, 6]))[0],
        atol=1e-6,
    )


def test_lengths_to_mask_refuses_concrete_lengths_out_of_range():
    with pytest.raises(ValueError, match="seq_lengths"):
        jaxrnn.lengths_to_mask(jnp.array([1, 4]), 3)


# --- Params of the wrong dtype ----------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64])
def test_params_of_a_non_float_dtype_are_refused(dtype):
    cell, params, x = _problem("lstm")
    params = dict(
        params, recurrent_kernel=params["recurrent_kernel"].astype(dtype)
    )
    with pytest.raises(
        TypeError,
        match=r"LSTMCell params\['recurrent_kernel"
        r"'\] must have a floating dtype",
    ):
        rnn(cell, params, x)


# --- An empty batch ---------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
@default_subset(
    lambda name, return_sequences, masked: (
        name == "simple" or return_sequences or masked
    )
)
@pytest.mark.parametrize("name", SPLIT_STEP)
def test_empty_batch_runs_forward_jit_and_grad(name, return_sequences, masked):
    cell, params, x = _problem(name, batch=0)
    kwargs = {"return_sequences": return_sequences}
    if masked:
        kwargs["mask"] = jnp.ones((0, 6), bool)

    def run(params, x):
        return rnn(cell, params, x, **kwargs)

    want = (0, 6, 3) if return_sequences else (0, 3)
    ys, carry = run(params, x)
    assert ys.shape == want
    assert all(leaf.shape == (0, 3) for leaf in jax.tree.leaves(carry))
    assert jax.jit(run)(params, x)[0].shape == want
    grads = jax.grad(lambda p, x: jnp.sum(run(p, x)[0]), argnums=(0, 1))(
        params, x
    )
    assert grads[1].shape == x.shape
    for got, param in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(params)):
        np.testing.assert_array_equal(got, np.zeros_like(param))


# --- Options that mean nothing together ---------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"keep_order": True}, "keep_order.*go_backwards"),
        ({"remat": True, "unroll": True}, "remat.*unroll=True"),
    ],
)
def test_options_that_mean_nothing_together_are_refused(kwargs, match):
    cell, params, x = _problem("gru")
    with pytest.raises(ValueError, match=match):
        rnn(cell, params, x, **kwargs)


def test_remat_with_an_unroll_factor_runs():
    cell, params, x = _problem("gru")
    assert rnn(cell, params, x, remat=True, unroll=2)[0].shape == (2, 6, 3)


# --- A custom cell that returns (y, carry) ----------------------------------


@dataclasses.dataclass(frozen=True)
class SwappedCell:
    """Returns (y, carry): a common slip in a user's own cell."""

    units: int = 3

    def init(self, key, input_dim):
        return {"w": jax.random.normal(key, (input_dim, self.units))}

    def initial_carry(self, batch_shape=()):
        zeros = jnp.zeros((*batch_shape, self.units))
        return zeros, zeros

    def __call__(self, params, carry, x, *, key=None, training=False):
        h = jnp.tanh(x @ params["w"] + carry[0])
        return h, (h, carry[1] + h)


@pytest.mark.parametrize(
    "kwargs", [{}, {"unroll": True}, {"mask": jnp.ones((2, 6), bool)}]
)
def test_cell_returning_y_first_is_named(kwargs):
    cell = SwappedCell()
    params = cell.init(jax.random.key(0), 2)
    with pytest.raises(
        ValueError,
        match=r"must return \(new_carry, y\).*"
        r"If it returns \(y, new_carry\), swap them",
    ):
        rnn(cell, params, jnp.ones((2, 6, 2)), **kwargs)


# --- Forward-mode differentiation -------------------------------------------


def _assert_trees_close(a, b, atol=1e-5):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=atol)


MASKS = {"unmasked": {}, "masked": {"seq_lengths": jnp.array([6, 3])}}


@default_subset(lambda name, mask: (name == "lstm") == (mask == "masked"))
@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("name", SPLIT_STEP)
def test_jvp_matches_unrolled(name, mask):
    cell, params, x = _problem(name)
    tangents = jax.tree.map(lambda a: jnp.cos(a + 1.0), (params, x))

    def run(unroll):
        def f(params, x):
            return rnn(cell, params, x, unroll=unroll, **MASKS[mask])

        return f

    want = jax.jvp(run(True), (params, x), tangents)
    _assert_trees_close(jax.jvp(run(1), (params, x), tangents), want)
    _assert_trees_close(
        jax.jit(lambda *a: jax.jvp(run(1), a[:2], a[2:]))(
            params, x, *tangents
        ),
        want,
    )
    _assert_trees_close(jax.jvp(jax.jit(run(1)), (params, x), tangents), want)


# test_jvp_matches_unrolled runs every cell forward-mode by default.
@default_subset(only(name=["simple"]))
@pytest.mark.parametrize("name", SPLIT_STEP)
def test_jacfwd_matches_unrolled(name):
    cell, params, x = _problem(name, steps=5)

    def outputs(unroll):
        return lambda params, x: rnn(
            cell, params, x, unroll=unroll, go_backwards=True
        )[0]

    want = jax.jacfwd(outputs(True), argnums=(0, 1))(params, x)
    _assert_trees_close(
        jax.jacfwd(outputs(1), argnums=(0, 1))(params, x), want
    )


def test_reverse_mode_keeps_the_hand_written_backward_pass(monkeypatch):
    import jaxrnn._engines as engines

    calls = []
    original = engines.split_step_scan

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(engines, "split_step_scan", counting)
    cell, params, x = _problem("lstm")

    def loss(params):
        return jnp.sum(rnn(cell, params, x)[0] ** 2)

    jax.grad(loss)(params)
    assert len(calls) == 1
    jax.jvp(loss, (params,), (params,))
    assert len(calls) == 1  # forward mode runs the plain scan


class _ReturnsOneArray:
    """A custom cell that forgets the pair: returns its new state alone."""

    def init(self, key, input_dim):
        return {"w": jnp.ones((input_dim, 4))}

    def initial_carry(self, batch_shape=()):
        return jnp.zeros((*batch_shape, 4))

    def __call__(self, params, carry, x, **kwargs):
        return jnp.tanh(x @ params["w"] + carry)


def test_cell_returning_one_array_is_named():
    """Unpacked, a (2, 4) array gave two rows as (carry, y): the message
    then suggested swapping them."""
    cell = _ReturnsOneArray()
    with pytest.raises(
        ValueError,
        match=r"must return a pair \(new_carry, y\), "
        r"got an array of shape \(2, 4\)",
    ):
        rnn(cell, cell.init(None, 3), jnp.ones((2, 5, 3)))
