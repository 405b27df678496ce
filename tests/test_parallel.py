"""rnn(..., parallel=True): the associative scan gives the sequential run's
numbers and gradients under every option; the protocol and its errors."""

import dataclasses
import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_registry import BY_NAME, make, names
from hypothesis import given, settings

import jaxrnn
from jaxrnn import rnn
from jaxrnn.cells.lru import LRUCell
from jaxrnn.cells.min_rnn import MinGRUCell
from jaxrnn.protocols import supports_parallel

# Every example compiles two programs (about a second on one core), so the
# default run draws few; the same properties run again, marked slow, with many.
THOROUGH = settings(max_examples=40, deadline=None, derandomize=True)


def default_and_thorough(default_examples, *strategies):
    """Two tests of one property: a few examples in the default run, many
    under ``-m slow``."""

    def make(check):
        quick = settings(
            max_examples=default_examples, deadline=None, derandomize=True
        )(given(*strategies)(check))
        thorough = pytest.mark.slow(THOROUGH(given(*strategies)(check)))
        return quick, thorough

    return make


PARALLEL = names(parallel=True)
ATOL = RTOL = 1e-5  # float32; the worst seen is a few 1e-7


def random_params(cell, features, rng):
    """Random params of `cell`'s shapes, drawn with NumPy (jax.random would
    compile anew for every shape). Any real values are valid params."""
    if isinstance(cell, jaxrnn.StackedCells):
        dims = [features] + [c.output_size for c in cell.cells[:-1]]
        return [random_params(c, d, rng) for c, d in zip(cell.cells, dims)]
    return {
        name: (0.7 * rng.normal(size=shape)).astype(np.float32)
        for name, shape in cell.param_shapes(features).items()
    }


@dataclasses.dataclass
class Problem:
    cell: object
    params: object
    x: np.ndarray  # (B, T, D)
    mask_kwargs: dict  # {}, {"mask": (B, T) bool} or {"seq_lengths": (B,)}
    carry: object  # a random initial carry, or None
    name: str = ""  # the cell's tests/cell_registry.py entry


@st.composite
def problems(draw, min_steps=1):
    name = draw(st.sampled_from(PARALLEL))
    batch, steps = draw(st.integers(1, 3)), draw(st.integers(min_steps, 17))
    units = draw(st.integers(1, 4))
    features = (
        units if BY_NAME[name].features_are_units else draw(st.integers(1, 4))
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    cell = make(name, units)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    kind = draw(st.sampled_from(["none", "mask", "lengths"]))
    mask_kwargs = {}
    if kind == "mask":  # any pattern: holes, leading and trailing gaps
        mask_kwargs["mask"] = rng.random((batch, steps)) < draw(
            st.sampled_from([0.3, 0.7])
        )
    elif kind == "lengths":  # right padding
        mask_kwargs["seq_lengths"] = rng.integers(0, steps + 1, batch)
    carry = None
    if draw(st.booleans()):
        carry = jax.tree.map(
            lambda z: rng.normal(size=z.shape).astype(np.float32),
            cell.initial_carry((batch,)),
        )
    return Problem(
        cell, random_params(cell, features, rng), x, mask_kwargs, carry, name
    )


@functools.cache
def jitted_rnn(cell, **flags):
    return jax.jit(functools.partial(rnn, cell, **flags))


def run(problem, **flags):
    return jitted_rnn(problem.cell, **flags)(
        problem.params,
        problem.x,
        initial_carry=problem.carry,
        **problem.mask_kwargs,
    )


def assert_trees_close(a, b, atol=ATOL, rtol=RTOL):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(
            np.asarray(x), np.asarray(y), atol=atol, rtol=rtol
        )


# --- Parallel equals sequential ---------------------------------------------


def check_parallel_equals_sequential(
    problem,
    go_backwards,
    keep_order,
    zero_output,
    return_sequences,
    time_major,
):
    # keep_order means nothing (and is refused) without go_backwards.
    flags = dict(
        go_backwards=go_backwards,
        keep_order=keep_order and go_backwards,
        zero_output_for_mask=zero_output,
        return_sequences=return_sequences,
        time_major=time_major,
    )
    if time_major:
        problem = dataclasses.replace(
            problem,
            x=problem.x.swapaxes(0, 1),
            mask_kwargs={k: v.T for k, v in problem.mask_kwargs.items()},
        )
    assert_trees_close(
        run(problem, parallel=True, **flags),
        run(problem, parallel=False, **flags),
    )


def check_gradients_parallel_equal_sequential(problem):
    carry = (
        problem.carry
        if problem.carry is not None
        else jax.tree.map(
            np.asarray, problem.cell.initial_carry((problem.x.shape[0],))
        )
    )
    forward = functools.partial(rnn, problem.cell, **problem.mask_kwargs)
    # Random weights: a plain sum lets errors in swapped units cancel out.
    out_shape = jax.eval_shape(forward, problem.params, problem.x)[0].shape
    weights = (
        np.random.default_rng(0).normal(size=out_shape).astype(np.float32)
    )

    def loss(params, x, carry, parallel):
        ys, final = forward(params, x, initial_carry=carry, parallel=parallel)
        return jnp.sum(ys * weights) + sum(
            jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(final)
        )

    grad = jax.jit(jax.grad(loss, (0, 1, 2)), static_argnums=3)
    assert_trees_close(
        grad(problem.params, problem.x, carry, True),
        grad(problem.params, problem.x, carry, False),
        atol=2e-5,
        rtol=BY_NAME[problem.name].grad_rtol if problem.name else 1e-4,
    )


def check_chunked_stateful_parallel_equals_one_call(problem, data):
    """Two parallel calls threading the final carry equal one call (and the
    sequential one). zero_output_for_mask: the "repeat the previous output"
    buffer of masked steps is not part of the carry."""
    steps = problem.x.shape[1]
    cut = data.draw(st.integers(1, steps - 1))
    mask = problem.mask_kwargs.get("mask")
    if "seq_lengths" in problem.mask_kwargs:
        mask = np.arange(steps) < problem.mask_kwargs["seq_lengths"][:, None]
    whole = dataclasses.replace(
        problem, mask_kwargs={} if mask is None else {"mask": mask}
    )
    flags = dict(parallel=True, zero_output_for_mask=True)
    ys, carry = run(whole, **flags)
    pieces, chunk_carry = [], problem.carry
    for part in (slice(0, cut), slice(cut, steps)):
        chunk = Problem(
            problem.cell,
            problem.params,
            problem.x[:, part],
            {} if mask is None else {"mask": mask[:, part]},
            chunk_carry,
        )
        chunk_ys, chunk_carry = run(chunk, **flags)
        pieces.append(chunk_ys)
    assert_trees_close(chunk_carry, carry)
    assert_trees_close(jnp.concatenate(pieces, axis=1), ys)
    assert_trees_close(
        (ys, carry), run(whole, parallel=False, zero_output_for_mask=True)
    )


def check_parallel_batched_equals_vmap_of_unbatched(problem, go_backwards):
    carry = (
        problem.carry
        if problem.carry is not None
        else jax.tree.map(
            np.asarray, problem.cell.initial_carry((problem.x.shape[0],))
        )
    )

    def run_one(params, x, carry, mask_kwargs):
        return rnn(
            problem.cell,
            params,
            x,
            initial_carry=carry,
            parallel=True,
            go_backwards=go_backwards,
            **mask_kwargs,
        )

    args = (problem.params, problem.x, carry, problem.mask_kwargs)
    assert_trees_close(
        jax.jit(run_one)(*args),
        jax.jit(jax.vmap(run_one, (None, 0, 0, 0)))(*args),
    )


(test_parallel_equals_sequential, test_parallel_equals_sequential_thorough) = (
    default_and_thorough(8, problems(), *[st.booleans()] * 5)(
        check_parallel_equals_sequential
    )
)
(
    test_gradients_parallel_equal_sequential,
    test_gradients_parallel_equal_sequential_thorough,
) = default_and_thorough(3, problems())(
    check_gradients_parallel_equal_sequential
)
(
    test_chunked_stateful_parallel_equals_one_call,
    test_chunked_stateful_parallel_equals_one_call_thorough,
) = default_and_thorough(3, problems(min_steps=2), st.data())(
    check_chunked_stateful_parallel_equals_one_call
)
(
    test_parallel_batched_equals_vmap_of_unbatched,
    test_parallel_batched_equals_vmap_of_unbatched_thorough,
) = default_and_thorough(3, problems(), st.booleans())(
    check_parallel_batched_equals_vmap_of_unbatched
)

SLOW = pytest.mark.slow


def some_slow(names, default):
    """`names` as parameters, all but `default` marked slow."""
    return [
        name if name in default else pytest.param(name, marks=SLOW)
        for name in names
    ]


@pytest.mark.parametrize(
    "name",
    some_slow(["lru", "min_gru", "min_gru_log", "min_lstm_log"], ["lru"]),
)
def test_long_sequences_stay_close(name):
    steps = 1024
    rng = np.random.default_rng(1)
    cell = (
        LRUCell(8, r_min=0.9, r_max=0.999) if name == "lru" else make(name, 8)
    )
    params = cell.init(jax.random.key(0), 8)
    problem = Problem(
        cell,
        params,
        rng.normal(size=(2, steps, 8)).astype(np.float32),
        {"seq_lengths": np.array([steps, steps - 300])},
        None,
    )
    assert_trees_close(
        run(problem, parallel=True), run(problem, parallel=False)
    )


# --- Masks and gradients ----------------------------------------------------


@pytest.mark.parametrize("name", some_slow(PARALLEL, ["stacked_parallel"]))
def test_garbage_in_masked_steps_never_leaks(name):
    rng = np.random.default_rng(2)
    cell = make(name, 3)
    params = random_params(cell, 3, rng)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 1, 0, 1, 1, 1]], bool)
    poisoned = np.where(
        mask[..., None], x, np.array([np.nan, np.inf, -np.inf], np.float32)
    )

    @jax.jit
    def value_and_grads(params, x):
        def loss(params, x):
            ys, carry = rnn(cell, params, x, mask=mask, parallel=True)
            return jnp.sum(ys**2) + sum(
                jnp.sum(c) for c in jax.tree.leaves(carry)
            )

        return jax.value_and_grad(loss, (0, 1))(params, x)

    clean_value, (clean_grads, _) = value_and_grads(params, x)
    value, (grads, grad_x) = value_and_grads(params, poisoned)
    np.testing.assert_allclose(value, clean_value, rtol=1e-6)
    assert_trees_close(grads, clean_grads)
    assert np.isfinite(np.asarray(grad_x)).all()
    np.testing.assert_array_equal(np.asarray(grad_x)[~mask], 0)


@pytest.mark.parametrize("name", some_slow(PARALLEL, ["lru", "min_lstm_log"]))
def test_check_grads(name):
    from jax.test_util import check_grads

    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        cell = make(name, 3)
        params = jax.tree.map(
            lambda p: p.astype(np.float64), random_params(cell, 3, rng)
        )
        x = rng.normal(size=(2, 5, 3))
        mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 0, 1]], bool)
        carry = jax.tree.map(
            lambda z: rng.normal(size=z.shape), cell.initial_carry((2,))
        )

        def f(params, x, carry):
            return rnn(
                cell, params, x, mask=mask, initial_carry=carry, parallel=True
            )

        check_grads(jax.jit(f), (params, x, carry), order=1, modes=["rev"])


# --- The protocol -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DecayCell:
    """The smallest parallel cell: ``h' = a * h + (1 - a) * x``, a learnt per
    unit; it leaves carry_to_state, state_to_carry and parallel_outputs to
    their defaults (the carry is the state, the output the state)."""

    units: int
    wrong_shape: bool = False

    def init(self, key, input_dim):
        return {"decay_logit": jax.random.normal(key, (self.units,))}

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return jnp.zeros((*batch_shape, self.units), dtype)

    def __call__(self, params, carry, x, *, key=None, training=False):
        a, b = self.parallel_coefficients(params, x)
        h = a * carry + b
        return h, h

    def parallel_coefficients(self, params, xs, *, key=None, training=False):
        a = jax.nn.sigmoid(params["decay_logit"])  # (H,): broadcasts
        b = (1 - a) * xs
        return a, (b[..., :1] if self.wrong_shape else b)


def test_a_custom_cell_needs_only_parallel_coefficients(key):
    cell = DecayCell(3)
    rng = np.random.default_rng(4)
    problem = Problem(
        cell,
        cell.init(key, 3),
        rng.normal(size=(2, 9, 3)).astype(np.float32),
        {"mask": rng.random((2, 9)) < 0.6},
        None,
    )
    assert supports_parallel(cell)
    assert_trees_close(
        run(problem, parallel=True), run(problem, parallel=False)
    )


def test_coefficients_of_the_wrong_shape_are_named(key):
    cell = DecayCell(3, wrong_shape=True)
    with pytest.raises(
        ValueError, match="parallel_coefficients must return b"
    ):
        rnn(cell, cell.init(key, 3), jnp.ones((2, 4, 3)), parallel=True)


@pytest.mark.parametrize(
    "cell",
    [
        jaxrnn.GRUCell(3),
        jaxrnn.LSTMCell(3),
        jaxrnn.SimpleRNNCell(3),
        jaxrnn.SLSTMCell(3),
    ],
)
def test_a_cell_without_parallel_support_is_a_type_error(cell):
    assert not supports_parallel(cell)
    params = random_params(cell, 2, np.random.default_rng(5))
    with pytest.raises(
        TypeError,
        match=f"parallel_coefficients.*parallel_run.*{type(cell).__name__} "
        "has neither",
    ):
        rnn(cell, params, np.ones((2, 4, 2), np.float32), parallel=True)


def test_a_stack_with_a_sequential_cell_is_a_type_error():
    cell = jaxrnn.StackedCells([MinGRUCell(3), jaxrnn.GRUCell(3)])
    params = random_params(cell, 2, np.random.default_rng(6))
    with pytest.raises(TypeError, match=r"cells\[1\] \(GRUCell\)"):
        rnn(cell, params, np.ones((2, 4, 2), np.float32), parallel=True)


def test_log_space_without_log_coefficients_is_a_type_error(key):
    @dataclasses.dataclass(frozen=True)
    class LogDecayCell(DecayCell):
        log_space: bool = True

    cell = LogDecayCell(3)
    assert not supports_parallel(cell)
    with pytest.raises(TypeError, match="parallel_log_coefficients"):
        rnn(cell, cell.init(key, 3), jnp.ones((2, 4, 3)), parallel=True)


def test_parallel_refuses_unroll_and_remat():
    cell = jaxrnn.MinGRUCell(4)
    params = cell.init(jax.random.key(0), 3)
    x = jnp.ones((2, 5, 3))
    for options in ({"unroll": True}, {"unroll": 2}, {"remat": True}):
        with pytest.raises(ValueError, match="parallel=True"):
            jaxrnn.rnn(cell, params, x, parallel=True, **options)
