"""rnn(): equivalence properties, masks, reversal, remat, dropout, errors."""

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_registry import make, names
from hypothesis import given, settings
from properties import examples
from subsets import default_subset, only

import jaxrnn
from jaxrnn import rnn

PROPERTY = settings(
    max_examples=examples(3, 40), deadline=None, derandomize=True
)

SEQUENTIAL = names(parallel=False)
ATOL = 2e-6


@st.composite
def problems(draw, with_mask=False):
    """A cell, its params, inputs (B, T, D) and optionally a random mask."""
    name = draw(st.sampled_from(SEQUENTIAL))
    batch = draw(st.integers(1, 3))
    steps = draw(st.integers(1, 19))
    features = draw(st.integers(1, 4))
    units = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    cell = make(name, units)
    k_params, k_x = jax.random.split(jax.random.key(seed))
    params = cell.init(k_params, features)
    x = jax.random.normal(k_x, (batch, steps, features))
    mask = None
    if with_mask:
        bits = draw(
            st.lists(
                st.booleans(), min_size=batch * steps, max_size=batch * steps
            )
        )
        mask = jnp.asarray(np.array(bits, bool).reshape(batch, steps))
    return cell, params, x, mask


def assert_trees_close(a, b, atol=ATOL):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


# --- Equivalences -----------------------------------------------------------


@PROPERTY
@given(problems(with_mask=True), st.integers(1, 4), st.booleans())
def test_scan_equals_unroll(problem, factor, zero_output):
    cell, params, x, mask = problem
    run = functools.partial(
        rnn, cell, params, x, mask=mask, zero_output_for_mask=zero_output
    )
    scanned = run()
    assert_trees_close(scanned, run(unroll=True))
    assert_trees_close(scanned, run(unroll=factor))


@PROPERTY
@given(problems(with_mask=True), st.booleans())
def test_batched_equals_vmap_of_unbatched(problem, go_backwards):
    cell, params, x, mask = problem
    batched = rnn(cell, params, x, mask=mask, go_backwards=go_backwards)
    mapped = jax.vmap(
        lambda x, m: rnn(cell, params, x, mask=m, go_backwards=go_backwards)
    )(x, mask)
    assert_trees_close(batched, mapped)


@PROPERTY
@given(problems(with_mask=True), st.booleans())
def test_time_major_equals_batch_major(problem, return_sequences):
    cell, params, x, mask = problem
    ys, carry = rnn(
        cell, params, x, mask=mask, return_sequences=return_sequences
    )
    ys_t, carry_t = rnn(
        cell,
        params,
        x.swapaxes(0, 1),
        mask=mask.T,
        time_major=True,
        return_sequences=return_sequences,
    )
    assert_trees_close(carry, carry_t)
    assert_trees_close(ys, ys_t.swapaxes(0, 1) if return_sequences else ys_t)


@PROPERTY
@given(problems(with_mask=True), st.booleans())
def test_masked_equals_running_only_the_valid_steps(problem, go_backwards):
    """Any mask pattern (right/left padding, holes): the final carry and the
    last output are those of the sequence with masked steps removed."""
    cell, params, x, mask = problem
    ys, carry = rnn(cell, params, x, mask=mask, go_backwards=go_backwards)
    last, _ = rnn(
        cell,
        params,
        x,
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=False,
    )
    for b in range(x.shape[0]):
        valid = np.asarray(mask[b])
        row_carry = jax.tree.map(lambda leaf: leaf[b], carry)
        if not valid.any():
            assert_trees_close(row_carry, cell.initial_carry())
            np.testing.assert_array_equal(last[b], 0)
            continue
        ys_b, carry_b = rnn(
            cell, params, x[b][valid], go_backwards=go_backwards
        )
        assert_trees_close(row_carry, carry_b)
        np.testing.assert_allclose(last[b], ys_b[-1], atol=ATOL)
        # Outputs at valid steps are the truncated run's, in order.
        order = np.flatnonzero(valid[::-1] if go_backwards else valid)
        np.testing.assert_allclose(ys[b][order], ys_b, atol=ATOL)


@PROPERTY
@given(problems(), st.data())
def test_seq_lengths_equal_right_padded_mask(problem, data):
    cell, params, x, _ = problem
    batch, steps = x.shape[:2]
    lengths = jnp.asarray(
        data.draw(
            st.lists(st.integers(0, steps), min_size=batch, max_size=batch)
        )
    )
    mask = jaxrnn.lengths_to_mask(lengths, steps)
    assert_trees_close(
        rnn(cell, params, x, seq_lengths=lengths),
        rnn(cell, params, x, mask=mask),
        atol=0,
    )


@PROPERTY
@given(problems(with_mask=True), st.data())
def test_chunked_stateful_equals_one_call(problem, data):
    # zero_output_for_mask: the "repeat the previous output" buffer of masked
    # steps is not part of the carry, so it restarts at each call.
    cell, params, x, mask = problem
    steps = x.shape[1]
    cuts = sorted(
        data.draw(st.lists(st.integers(1, steps - 1), max_size=3, unique=True))
        if steps > 1
        else []
    )
    run = functools.partial(rnn, cell, params, zero_output_for_mask=True)
    whole, whole_carry = run(x, mask=mask)
    carry, pieces = None, []
    for start, stop in zip([0] + cuts, cuts + [steps]):
        ys, carry = run(
            x[:, start:stop], mask=mask[:, start:stop], initial_carry=carry
        )
        pieces.append(ys)
    assert_trees_close(whole_carry, carry)
    assert_trees_close(whole, jnp.concatenate(pieces, axis=1))


@PROPERTY
@given(problems(with_mask=True))
def test_go_backwards_is_forward_on_reversed_inputs(problem):
    cell, params, x, mask = problem
    backwards = rnn(cell, params, x, mask=mask, go_backwards=True)
    reversed_forward = rnn(cell, params, x[:, ::-1], mask=mask[:, ::-1])
    assert_trees_close(backwards, reversed_forward)
    ys_kept, carry_kept = rnn(
        cell, params, x, mask=mask, go_backwards=True, keep_order=True
    )
    assert_trees_close(ys_kept, backwards[0][:, ::-1])
    assert_trees_close(carry_kept, backwards[1])


@PROPERTY
@given(problems(with_mask=True))
def test_reverse_twice_is_identity(problem):
    cell, params, x, mask = problem
    twice = rnn(
        cell, params, x[:, ::-1], mask=mask[:, ::-1], go_backwards=True
    )
    assert_trees_close(twice, rnn(cell, params, x, mask=mask))


# --- Masks ------------------------------------------------------------------


# The split-step LSTM's and GRU's garbage tests run by default in
# tests/test_fused.py.
@default_subset(only(name=["gru_reset_before", "simple", "stacked"]))
@pytest.mark.parametrize("name", SEQUENTIAL)
def test_garbage_in_masked_steps_never_leaks(name, key):
    cell = make(name, 3)
    params = cell.init(key, 2)
    x = jax.random.normal(key, (2, 6, 2))
    mask = jnp.array([[1, 1, 1, 1, 0, 0], [0, 1, 0, 1, 1, 1]], bool)
    poisoned = jnp.where(
        mask[..., None], x, jnp.array([jnp.nan, jnp.inf])[None, None]
    )

    def loss(params, x):
        ys, carry = rnn(cell, params, x, mask=mask)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

    clean_value, (clean_grads, _clean_x) = jax.value_and_grad(loss, (0, 1))(
        params, x
    )
    value, (grads, grad_x) = jax.value_and_grad(loss, (0, 1))(params, poisoned)
    np.testing.assert_allclose(value, clean_value, rtol=1e-6)
    assert_trees_close(grads, clean_grads, atol=1e-5)
    assert np.isfinite(np.asarray(grad_x)).all()
    np.testing.assert_array_equal(np.asarray(grad_x)[~np.asarray(mask)], 0)


def test_masked_step_repeats_previous_output_or_zero(key):
    cell = jaxrnn.GRUCell(3)
    params = cell.init(key, 2)
    x = jax.random.normal(key, (1, 4, 2))
    mask = jnp.array([[True, False, True, False]])
    ys, _ = rnn(cell, params, x, mask=mask)
    np.testing.assert_array_equal(ys[0, 1], ys[0, 0])
    np.testing.assert_array_equal(ys[0, 3], ys[0, 2])
    zs, _ = rnn(cell, params, x, mask=mask, zero_output_for_mask=True)
    np.testing.assert_array_equal(zs[0, 1], 0)
    np.testing.assert_array_equal(zs[0, 0], ys[0, 0])
    # Leading masked steps have no previous output: zeros (Keras' TF backend).
    lead, _ = rnn(
        cell,
        params,
        x,
        mask=jnp.array([[False, True, True, True]]),
        initial_carry=jnp.ones((1, 3)),
    )
    np.testing.assert_array_equal(lead[0, 0], 0)


def test_zero_output_for_mask_last_output(key):
    """Chosen behaviour: return_sequences=False returns each row's output at
    its last valid step even with zero_output_for_mask=True (Keras returns
    zeros there; its docs say the flag only concerns sequences)."""
    cell = jaxrnn.LSTMCell(3)
    params = cell.init(key, 2)
    x = jax.random.normal(key, (2, 5, 2))
    lengths = jnp.array([5, 3])
    last, _ = rnn(
        cell,
        params,
        x,
        seq_lengths=lengths,
        zero_output_for_mask=True,
        return_sequences=False,
    )
    ys, _ = rnn(
        cell, params, x, seq_lengths=lengths, zero_output_for_mask=True
    )
    np.testing.assert_array_equal(last[0], ys[0, 4])
    np.testing.assert_array_equal(last[1], ys[1, 2])
    np.testing.assert_array_equal(ys[1, 3:], 0)


# --- Gradients, remat, jit --------------------------------------------------


# The split-step GRU's gradients are checked by default in
# tests/test_fused.py, the stack's in test_remat_keeps_values_and_gradients.
@default_subset(only(name=["gru_reset_before", "lstm", "simple"]))
@pytest.mark.parametrize("name", SEQUENTIAL)
def test_check_grads(name):
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        cell = make(name, 3)
        params = jax.tree.map(
            lambda p: p.astype(jnp.float64), cell.init(jax.random.key(0), 2)
        )
        x = jax.random.normal(jax.random.key(1), (2, 5, 2), jnp.float64)
        mask = jnp.array([[1, 1, 1, 0, 0], [0, 1, 1, 0, 1]], bool)

        def f(params, x):
            ys, carry = rnn(
                cell,
                params,
                x,
                mask=mask,
                initial_carry=jax.tree.map(
                    lambda z: z.astype(jnp.float64) + 0.1,
                    cell.initial_carry((2,)),
                ),
            )
            return ys, carry

        check_grads(f, (params, x), order=1, modes=["rev"])


@default_subset(only(name=["gru", "simple", "stacked"]))
@pytest.mark.parametrize("name", SEQUENTIAL)
def test_remat_keeps_values_and_gradients(name, key):
    cell = make(name, 4)
    params = cell.init(key, 3)
    x = jax.random.normal(key, (2, 21, 3))
    mask = jaxrnn.lengths_to_mask(jnp.array([21, 9]), 21)

    def loss(params, x, remat):
        ys, _ = rnn(cell, params, x, mask=mask, remat=remat)
        return jnp.sum(jnp.sin(ys))

    plain = jax.jit(jax.value_and_grad(loss, (0, 1)), static_argnums=2)
    assert_trees_close(
        plain(params, x, True), plain(params, x, False), atol=1e-5
    )


def test_remat_reduces_saved_memory(key):
    cell = jaxrnn.LSTMCell(64)
    params = cell.init(key, 32)
    x = jax.random.normal(key, (8, 256, 32))

    def peak(remat):
        grad = jax.jit(
            jax.grad(lambda p: jnp.sum(rnn(cell, p, x, remat=remat)[0]))
        )
        stats = grad.lower(params).compile().memory_analysis()
        return stats.temp_size_in_bytes

    # The default already saves only each step's carry (tests/test_fused.py);
    # remat keeps one carry per chunk of steps.
    assert peak(True) < peak(False) * 0.6


def test_rnn_under_jit_with_static_cell(key):
    cell = jaxrnn.LSTMCell(4)
    params = cell.init(key, 3)
    x = jax.random.normal(key, (2, 9, 3))
    run = jax.jit(rnn, static_argnums=0, static_argnames=("go_backwards",))
    assert_trees_close(
        run(cell, params, x, go_backwards=True),
        rnn(cell, params, x, go_backwards=True),
        atol=1e-6,
    )


# --- Dropout ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: jaxrnn.LSTMCell(4, dropout=0.3, recurrent_dropout=0.4),
        lambda: jaxrnn.GRUCell(
            4, dropout=0.3, recurrent_dropout=0.4, reset_after=False
        ),
        lambda: jaxrnn.StackedCells(
            [
                jaxrnn.SimpleRNNCell(3, dropout=0.5),
                jaxrnn.GRUCell(4, recurrent_dropout=0.5),
            ]
        ),
    ],
)
def test_dropout_uses_one_mask_per_sequence(make, key):
    """The hoisted path equals calling the cell step by step with the same
    key, which draws the same masks every step."""
    cell = make()
    params = cell.init(jax.random.key(3), 2)
    x = jax.random.normal(jax.random.key(4), (3, 10, 2))
    ys, carry = rnn(cell, params, x, key=key, training=True)
    step_carry = cell.initial_carry((3,))
    for t in range(10):
        step_carry, y = cell(
            params, step_carry, x[:, t], key=key, training=True
        )
        np.testing.assert_allclose(ys[:, t], y, atol=1e-6)
    assert_trees_close(carry, step_carry, atol=1e-6)
    eval_ys, _ = rnn(cell, params, x)
    assert not np.allclose(ys, eval_ys)


@pytest.mark.parametrize(
    "make",
    [
        lambda: jaxrnn.LSTMCell(4, dropout=0.3, recurrent_dropout=0.4),
        lambda: jaxrnn.GRUCell(4, dropout=0.3, recurrent_dropout=0.4),
    ],
)
def test_masked_dropout_steps_match_the_cell_step_by_step(make, key):
    """With dropout the split cells run the plain scan, holding a masked
    step's carry through their gates: the same as stepping the cell and
    keeping the old carry, gradients included."""
    cell = make()
    params = cell.init(jax.random.key(3), 2)
    x = jax.random.normal(jax.random.key(4), (3, 9, 2))
    mask = jax.random.bernoulli(jax.random.key(5), 0.6, (3, 9))

    def by_rnn(params, x):
        ys, carry = rnn(
            cell,
            params,
            x,
            mask=mask,
            key=key,
            training=True,
            zero_output_for_mask=True,
        )
        return jnp.sum(ys**2) + sum(
            jnp.sum(leaf**2) for leaf in jax.tree.leaves(carry)
        )

    def by_steps(params, x):
        carry, total = cell.initial_carry((3,)), 0.0
        for t in range(9):
            new, y = cell(params, carry, x[:, t], key=key, training=True)
            keep = mask[:, t, None]
            carry = jax.tree.map(
                lambda n, o: jnp.where(keep, n, o), new, carry
            )
            total += jnp.sum(jnp.where(keep, y, 0.0) ** 2)
        return total + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(carry))

    assert_trees_close(
        jax.value_and_grad(by_rnn, (0, 1))(params, x),
        jax.value_and_grad(by_steps, (0, 1))(params, x),
        atol=1e-5,
    )


def test_dropout_training_without_key_is_an_error(key):
    cell = jaxrnn.LSTMCell(4, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match="key"):
        rnn(cell, cell.init(key, 2), jnp.ones((1, 3, 2)), training=True)


# --- Carries ----------------------------------------------------------------


def test_reset_carry_zeros_selected_rows():
    carry = (jnp.ones((3, 2)), jnp.full((3, 2), 2.0))
    h, c = jaxrnn.reset_carry(carry, jnp.array([False, True, False]))
    np.testing.assert_array_equal(h[:, 0], [1, 0, 1])
    np.testing.assert_array_equal(c[:, 0], [2, 0, 2])


def test_reset_carry_validation():
    with pytest.raises(TypeError, match="reset_mask"):
        jaxrnn.reset_carry(jnp.ones((3, 2)), jnp.array([0, 1, 0]))
    with pytest.raises(ValueError, match="carry leaf 0"):
        jaxrnn.reset_carry(jnp.ones((4, 2)), jnp.array([False, True, False]))


def test_unbatched_inputs(key):
    cell = jaxrnn.LSTMCell(4)
    params = cell.init(key, 3)
    x = jax.random.normal(key, (6, 3))
    ys, (h, _c) = rnn(
        cell, params, x, mask=jnp.array([1, 1, 1, 1, 0, 0], bool)
    )
    assert ys.shape == (6, 4) and h.shape == (4,)
    last, _ = rnn(
        cell, params, x, seq_lengths=jnp.array(4), return_sequences=False
    )
    np.testing.assert_allclose(last, ys[3], atol=1e-6)


# --- Mixed precision --------------------------------------------------------


@pytest.mark.parametrize("name", ["simple", "lstm", "gru"])
def test_bfloat16_compute_with_float32_params(name, key):
    make = {
        "simple": jaxrnn.SimpleRNNCell,
        "lstm": jaxrnn.LSTMCell,
        "gru": jaxrnn.GRUCell,
    }[name]
    full = make(32)
    half = make(32, dtype=jnp.bfloat16, param_dtype=jnp.float32)
    params = half.init(key, 16)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    x = jax.random.normal(jax.random.key(9), (4, 512, 16))
    ys32, _carry32 = rnn(full, params, x)
    ys16, carry16 = rnn(half, params, x)
    assert ys16.dtype == jnp.bfloat16
    assert all(c.dtype == jnp.bfloat16 for c in jax.tree.leaves(carry16))
    error = np.abs(np.asarray(ys16, np.float32) - np.asarray(ys32))
    assert np.isfinite(error).all()
    # No drift: the error late in the sequence is no worse than early on.
    assert error.max() < 0.05  # measured: 0.009-0.014
    assert error[:, -64:].mean() < 2 * error[:, 32:96].mean() + 1e-3


def test_float32_carry_with_bfloat16_compute(key):
    cell = jaxrnn.LSTMCell(8, dtype=jnp.bfloat16)
    params = cell.init(key, 4)
    x = jax.random.normal(key, (2, 10, 4))
    ys, (h, c) = rnn(
        cell, params, x, initial_carry=cell.initial_carry((2,), jnp.float32)
    )
    assert ys.dtype == jnp.bfloat16
    assert h.dtype == c.dtype == jnp.float32


def test_initial_carry_accepts_dtype_objects():
    cell = jaxrnn.GRUCell(3, dtype=jnp.dtype("bfloat16"))
    assert cell.initial_carry((2,)).dtype == jnp.bfloat16
    assert cell.initial_carry((2,), jnp.dtype("float16")).dtype == jnp.float16


# --- Bad input ----------------------------------------------------------------


@pytest.fixture
def lstm(key):
    cell = jaxrnn.LSTMCell(4)
    return cell, cell.init(key, 3)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (
            {"inputs": jnp.ones((2, 3, 5, 3))},
            ValueError,
            r"`inputs` must have shape \(B, T, D\)",
        ),
        ({"inputs": jnp.ones(3)}, ValueError, "inputs"),
        ({"inputs": jnp.ones((2, 5, 3), jnp.int32)}, TypeError, "floating"),
        (
            {"inputs": jnp.ones((2, 0, 3))},
            ValueError,
            "at least one time step",
        ),
        ({"inputs": jnp.ones((2, 5, 7))}, ValueError, r"params\['kernel'\]"),
        (
            {"mask": jnp.ones((2, 4), bool)},
            ValueError,
            r"`mask` must have shape \(2, 5\), got \(2, 4\)",
        ),
        ({"mask": jnp.ones((2, 5))}, TypeError, "`mask` must be a bool"),
        (
            {"mask": jnp.ones((5, 2), bool), "time_major": False},
            ValueError,
            "mask",
        ),
        ({"seq_lengths": jnp.array([1.0, 2.0])}, TypeError, "seq_lengths"),
        ({"seq_lengths": jnp.array([1, 2, 3])}, ValueError, "seq_lengths"),
        (
            {"seq_lengths": jnp.array([1, 2]), "mask": jnp.ones((2, 5), bool)},
            ValueError,
            "not both",
        ),
        ({"initial_carry": jnp.zeros((2, 4))}, ValueError, "initial_carry"),
        (
            {"initial_carry": (jnp.zeros((2, 4)), jnp.zeros((2, 5)))},
            ValueError,
            "initial_carry",
        ),
        ({"unroll": 0}, ValueError, "unroll"),
        ({"go_backwards": 1}, TypeError, "go_backwards"),
    ],
)
def test_bad_input(lstm, kwargs, error, match):
    cell, params = lstm
    kwargs = dict(kwargs)
    inputs = kwargs.pop("inputs", jnp.ones((2, 5, 3)))
    with pytest.raises(error, match=match):
        jax.jit(lambda p, x: rnn(cell, p, x, **kwargs))(params, inputs)


def test_bad_params_key(lstm):
    cell, params = lstm
    with pytest.raises(ValueError, match="recurrent_kernel"):
        rnn(
            cell,
            {"kernel": params["kernel"], "bias": params["bias"]},
            jnp.ones((2, 5, 3)),
        )
