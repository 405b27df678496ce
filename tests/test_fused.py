"""The hand-written backward pass (jaxrnn/_fused.py) against autodiff.

`unroll=True` runs the same steps through plain autodiff, so gradients of
the default path must equal it, for every option that reaches the split
step: masks, zero_output_for_mask, return_sequences, go_backwards, an
initial carry, remat, mixed dtypes and a custom cell that opts in.
"""

import dataclasses
import re

import hypothesis.strategies as st
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from properties import examples
from subsets import default_subset, pairwise

import jaxrnn
from jaxrnn import _engines, _fused, _fused_plan
from jaxrnn._fused import split_step_scan
from jaxrnn._fused_plan import SplitStepPlan
from jaxrnn._masking import masked_chunk_outputs
from jaxrnn._pieces import scan_pieces as _scan_pieces
from jaxrnn.protocols import has_split_step

CELLS = {
    "lstm": jaxrnn.LSTMCell(5),
    "gru": jaxrnn.GRUCell(5),
    "simple": jaxrnn.SimpleRNNCell(5),
}


def _grads(cell, params, x, carry, mask, unroll, **options):
    def loss(params, x, carry):
        ys, final = jaxrnn.rnn(
            cell,
            params,
            x,
            initial_carry=carry,
            mask=mask,
            unroll=unroll,
            **options,
        )
        weights = jnp.arange(ys.size, dtype=ys.dtype).reshape(ys.shape)
        return jnp.sum(jnp.sin(ys) * weights / ys.size) + sum(
            jnp.sum(leaf**2) for leaf in jax.tree.leaves(final)
        )

    return jax.value_and_grad(loss, (0, 1, 2))(params, x, carry)


def _assert_close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(
            np.asarray(u, np.float32),
            np.asarray(v, np.float32),
            atol=tol,
            rtol=tol,
        )


def test_which_cells_split():
    assert has_split_step(jaxrnn.LSTMCell(3))
    assert has_split_step(jaxrnn.GRUCell(3))
    assert has_split_step(jaxrnn.SimpleRNNCell(3))
    assert not has_split_step(jaxrnn.GRUCell(3, reset_after=False))
    assert not has_split_step(jaxrnn.StackedCells([jaxrnn.LSTMCell(3)]))


# 3 examples by default (about 5 s each); CI's thorough pass draws 50.
@settings(max_examples=examples(3, 50), deadline=None)
@given(
    name=st.sampled_from(sorted(CELLS)),
    steps=st.integers(1, 19),
    batch=st.integers(1, 3),
    masked=st.booleans(),
    zero_output=st.booleans(),
    sequences=st.booleans(),
    backwards=st.booleans(),
    remat=st.booleans(),
    unroll=st.integers(1, 3),
    block_rows=st.sampled_from([0, 8, 12, 512]),
    keep_projections=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_gradients_equal_autodiff(
    name,
    steps,
    batch,
    masked,
    zero_output,
    sequences,
    backwards,
    remat,
    unroll,
    block_rows,
    keep_projections,
    seed,
):
    # block_rows: one chunk per backward block (0), several blocks with a
    # partial last one (8, 12 at batch 1), or one block of every step; the
    # same with remat, whose blocks are rerun from their first carry.
    # keep_projections: the forward pass saves them (as for wide cells).
    overrides = dict(
        SPLIT_STEP_BLOCK_ROWS=block_rows,
        SPLIT_STEP_SAVED_BLOCK_ROWS=block_rows,
        SPLIT_STEP_REMAT_BLOCK_ROWS=block_rows,
        SPLIT_STEP_REMAT_MIN_BLOCKS=1,
        SPLIT_STEP_REMAT_CHUNK_ROWS=1 << 30,
        SPLIT_STEP_KEEP_PROJECTIONS_WIDTH=(0 if keep_projections else 1 << 30),
    )
    defaults = {
        setting: getattr(_fused_plan, setting) for setting in overrides
    }
    for setting, value in overrides.items():
        setattr(_fused_plan, setting, value)
    try:
        _check_gradients(
            name,
            steps,
            batch,
            masked,
            zero_output,
            sequences,
            backwards,
            remat,
            unroll,
            seed,
        )
    finally:
        for setting, value in defaults.items():
            setattr(_fused_plan, setting, value)


def _check_gradients(
    name,
    steps,
    batch,
    masked,
    zero_output,
    sequences,
    backwards,
    remat,
    unroll,
    seed,
):
    cell = CELLS[name]
    keys = jax.random.split(jax.random.key(seed), 4)
    params = cell.init(keys[0], 3)
    x = jax.random.normal(keys[1], (batch, steps, 3))
    carry = jax.tree.map(
        lambda leaf: jax.random.normal(keys[2], leaf.shape),
        cell.initial_carry((batch,)),
    )
    mask = (
        jax.random.bernoulli(keys[3], 0.6, (batch, steps)) if masked else None
    )
    options = dict(
        zero_output_for_mask=zero_output,
        return_sequences=sequences,
        go_backwards=backwards,
    )
    fused = _grads(
        cell, params, x, carry, mask, unroll, remat=remat, **options
    )
    reference = _grads(cell, params, x, carry, mask, True, **options)
    _assert_close(fused, reference)


def test_saves_less_than_autodiff_and_remat_less_still(monkeypatch):
    cell = jaxrnn.LSTMCell(32)
    params = cell.init(jax.random.key(0), 16)
    # Long enough that autodiff's per-step activations outweigh the
    # hand-written pass's per-block buffers.
    x = jax.random.normal(jax.random.key(1), (8, 1024, 16))

    def step(remat):
        def loss(params, x):
            return jnp.mean(jaxrnn.rnn(cell, params, x, remat=remat)[0] ** 2)

        return jax.jit(jax.grad(loss, (0, 1))).lower(params, x).compile()

    def temp(compiled):
        return compiled.memory_analysis().temp_size_in_bytes

    plain, remat = step(False), step(True)
    _assert_close(plain(params, x), remat(params, x), tol=1e-6)
    monkeypatch.setattr(_engines, "has_split_step", lambda cell: False)
    autodiff, autodiff_remat = step(False), step(True)
    _assert_close(plain(params, x), autodiff(params, x))
    assert temp(plain) < temp(autodiff) / 2
    assert temp(remat) < temp(plain) * 0.8
    assert temp(remat) <= temp(autodiff_remat)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_kept_projections_still_take_less_than_autodiff(name, monkeypatch):
    # A wide cell (D + H >= 768) keeps its projections: more memory than
    # the carries alone, still less than autodiff's, and remat's cut grows.
    cell = (jaxrnn.LSTMCell if name == "lstm" else jaxrnn.GRUCell)(384)
    params = cell.init(jax.random.key(0), 384)
    x = jax.random.normal(jax.random.key(1), (4, 256, 384))

    def temp(remat=False):
        def loss(params, x):
            return jnp.mean(jaxrnn.rnn(cell, params, x, remat=remat)[0] ** 2)

        compiled = jax.jit(jax.grad(loss, (0, 1))).lower(params, x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    kept, remat = temp(), temp(remat=True)
    monkeypatch.setattr(
        _fused_plan, "SPLIT_STEP_KEEP_PROJECTIONS_WIDTH", 1 << 30
    )
    carries = temp()
    monkeypatch.setattr(_engines, "has_split_step", lambda cell: False)
    autodiff = temp()
    assert carries < kept < autodiff
    assert remat < kept / 2


@pytest.mark.parametrize(
    "cell_type,batch,units,remat,saved,block",
    [
        # 512 rows, at most 1 MB of projections: 2 chunks of 32 x 4 steps.
        (jaxrnn.LSTMCell, 32, 256, False, "carries", 8),
        # Saved projections: 1024 rows, at most 8 MB; a chunk is 4 MB here.
        (jaxrnn.LSTMCell, 128, 512, False, "projections", 8),
        (jaxrnn.LSTMCell, 32, 512, False, "projections", 32),
        (jaxrnn.GRUCell, 128, 512, False, "projections", 8),
        # remat: one chunk where it has 128 rows or more.
        (jaxrnn.LSTMCell, 128, 512, True, "chunk_carries", 4),
    ],
)
def test_backward_blocks_follow_what_the_forward_saves(
    monkeypatch, cell_type, batch, units, remat, saved, block
):
    chosen = []

    def spy(plan, *args):
        chosen.append((plan.chunk, plan.block, plan.saved))
        return split_step_scan(plan, *args)

    monkeypatch.setattr(_engines, "split_step_scan", spy)
    cell = cell_type(units)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), units))
    x = jax.ShapeDtypeStruct((batch, 64, units), jnp.float32)
    jax.eval_shape(
        lambda p, x: jaxrnn.rnn(cell, p, x, remat=remat)[0], params, x
    )
    assert chosen == [(4, block, saved)]


def _split_step_problem(cell, seed, masked):
    """(params, time-major xs (14, 2, 3), keep (14, 2) or None, carry)."""
    keys = jax.random.split(jax.random.key(seed), 4)
    params = cell.init(keys[0], 3)
    xs = jax.random.normal(keys[1], (14, 2, 3))
    keep = jax.random.bernoulli(keys[2], 0.7, (14, 2)) if masked else None
    carry = jax.tree.map(
        lambda leaf: jax.random.normal(keys[3], leaf.shape),
        cell.initial_carry((2,)),
    )
    return params, xs, keep, carry


def _split_step_grads(cell, saved, params, xs, keep, carry):
    """Loss and gradients through `split_step_scan` (chunks of 4, blocks of
    8) with what the forward pass `saved`."""

    def loss(params, xs, carry):
        ys, final, _ = split_step_scan(
            SplitStepPlan(cell, 4, 8, 1, saved, False, 0),
            params,
            xs,
            keep,
            carry,
        )
        return jnp.sum(jnp.sin(ys)) + sum(
            jnp.sum(leaf**2) for leaf in jax.tree.leaves(final)
        )

    return jax.value_and_grad(loss, (0, 1, 2))(params, xs, carry)


# Every pair of (cell, saved, masked) by default: 6 of 12 cases.
@default_subset(
    pairwise(
        ("name", ["lstm", "gru", "simple"]),
        ("saved", ["projections", "chunk_carries"]),
        ("masked", [False, True]),
    )
)
@pytest.mark.parametrize("name", ["lstm", "gru", "simple"])
@pytest.mark.parametrize("saved", ["projections", "chunk_carries"])
@pytest.mark.parametrize("masked", [False, True])
def test_what_the_forward_saves_leaves_gradients_unchanged(
    name, saved, masked
):
    # "projections": the backward pass takes the saved projections instead
    # of recomputing them; "chunk_carries" (remat): it reruns blocks of
    # several chunks from their first carry, partial last block included.
    cell = CELLS[name]
    problem = _split_step_problem(cell, 3, masked)
    _assert_close(
        _split_step_grads(cell, saved, *problem),
        _split_step_grads(cell, "carries", *problem),
        tol=1e-6,
    )


@pytest.mark.parametrize(
    "name, summed", [("lstm", True), ("simple", True), ("gru", False)]
)
def test_saved_projections_are_one_sum_where_the_gates_add_them(name, summed):
    # LSTM and SimpleRNN gates take x W + b + h U as one sum, so the forward
    # pass saves that sum alone: one (T, B, G*H) sequence instead of two (a
    # third less temp memory in the B=128, H=512 LSTM training step). The
    # GRU's reset gate scales h U + b_r alone: it keeps both.
    cell = CELLS[name]
    params, xs, keep, carry = _split_step_problem(cell, 3, False)
    width = params["recurrent_kernel"].shape[1]
    step = jax.ShapeDtypeStruct((2, width), jnp.float32)
    assert _fused.gates_add_projections(cell, carry, step, step) == summed

    _, residuals = _fused._split_step_fwd(
        SplitStepPlan(cell, 4, 8, 1, "projections", False, 0),
        params,
        xs,
        keep,
        carry,
    )
    _, kept_projections, kept_recurrent = residuals[-1]
    assert kept_projections.shape == (14, 2, width)
    assert (kept_recurrent is None) == summed
    if summed:
        recurrent = cell.project_recurrent(
            params, cell.recurrent_input(residuals[-1][0], None, jnp.float32)
        )
        _assert_close(
            kept_projections,
            cell.project_inputs(params, xs) + recurrent,
            tol=1e-6,
        )


class _ReadsItsInputAlone(jaxrnn.SimpleRNNCell):
    """Adds the projections, and also reads the input one on its own."""

    def apply_gates(self, carry, projected, recurrent):
        h = jnp.where(projected > 0, jnp.tanh(projected + recurrent), 0.0)
        return h, h


@pytest.mark.parametrize("masked", [False, True])
def test_a_step_that_reads_one_projection_alone_keeps_both(masked):
    # Adding them is not enough: where a step also reads one projection on
    # its own, even where no gradient flows (here a comparison), the sum
    # would not recompute it, so both are kept and the gradients stay
    # autodiff's.
    cell = _ReadsItsInputAlone(5)
    params, xs, keep, carry = _split_step_problem(cell, 8, masked)
    step = jax.ShapeDtypeStruct((2, 5), jnp.float32)
    assert not _fused.gates_add_projections(cell, carry, step, step)
    _, residuals = _fused._split_step_fwd(
        SplitStepPlan(cell, 4, 8, 1, "projections", False, 0),
        params,
        xs,
        keep,
        carry,
    )
    assert residuals[-1][2] is not None
    problem = (params, xs, keep, carry)
    _assert_close(
        _split_step_grads(cell, "projections", *problem),
        _split_step_grads(cell, "carries", *problem),
        tol=1e-6,
    )


# Every pair of (saved, cell, masked) by default: 6 of 12 cases.
@default_subset(
    pairwise(
        ("saved", ["carries", "projections", "chunk_carries"]),
        ("name", ["lstm", "gru"]),
        ("masked", [False, True]),
    )
)
@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("saved", ["carries", "projections", "chunk_carries"])
@pytest.mark.parametrize("masked", [False, True])
def test_batch_major_sequences_match_time_major(name, saved, masked):
    # time_axis=1 reads (B, T, D) inputs and writes (B, T, H) outputs and
    # input gradients a piece at a time: the same numbers as time-major.
    cell = CELLS[name]
    params, xs, keep, carry = _split_step_problem(cell, 4, masked)

    def run(time_axis):
        def loss(params, xs, carry):
            ys, final, last = split_step_scan(
                SplitStepPlan(cell, 4, 8, 1, saved, False, time_axis),
                params,
                xs,
                keep,
                carry,
            )
            ys = ys if time_axis == 0 else jnp.swapaxes(ys, 0, 1)
            weights = jnp.arange(ys.size, dtype=ys.dtype).reshape(ys.shape)
            return (
                jnp.sum(jnp.sin(ys) * weights / ys.size)
                + jnp.sum(jnp.cos(last))
                + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final))
            )

        inputs = xs if time_axis == 0 else jnp.swapaxes(xs, 0, 1)
        value, (d_params, d_xs, d_carry) = jax.jit(
            jax.value_and_grad(loss, (0, 1, 2))
        )(params, inputs, carry)
        if time_axis == 1:
            d_xs = jnp.swapaxes(d_xs, 0, 1)
        return value, d_params, d_xs, d_carry

    _assert_close(run(1), run(0), tol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", [3, 4, 8, 11])
def test_batch_major_pieces_are_the_time_major_ones(reverse, steps):
    # Elements of seq and out named batch-major have time on axis 1: the
    # body sees and returns the same pieces, transposed.
    time_major = jnp.arange(steps * 2 * 3.0).reshape(steps, 2, 3)
    other = jnp.arange(steps * 2.0).reshape(steps, 2) * 10
    per_piece = jnp.arange(-(-steps // 4), dtype=jnp.float32) * 100

    def body(axis):
        def run(carry, piece, entry):
            a, b = piece
            a = a if axis == 0 else jnp.swapaxes(a, 0, 1)
            carry = (
                carry * 3
                + jnp.sum(a * jnp.arange(1.0, 4.0))
                + jnp.sum(b)
                + entry
            )
            out = a * carry
            return carry, (
                out if axis == 0 else jnp.swapaxes(out, 0, 1),
                b + entry,
            )

        return run

    def run(axis):
        seq = (
            time_major if axis == 0 else jnp.swapaxes(time_major, 0, 1),
            other,
        )
        layout = (
            {} if axis == 0 else {"batch_major": (0,), "batch_major_out": (0,)}
        )
        carry, (a, b) = jax.jit(
            lambda seq: _scan_pieces(
                body(axis),
                jnp.float32(1),
                seq,
                4,
                reverse=reverse,
                per_piece=per_piece,
                **layout,
            )
        )(seq)
        return carry, (a if axis == 0 else jnp.swapaxes(a, 0, 1)), b

    _assert_close(run(1), run(0), tol=0)


def test_batch_major_training_holds_no_transposed_copies():
    # rnn reads batch-major inputs in place: its training step needs no
    # more temp memory than with time-major inputs, where before it held
    # transposed copies of the inputs, outputs and their gradients.
    # (Compiled, not run: B=16, T=2048, H=128 as in the benchmarks, where
    # those copies took 96 MiB against 64 and with remat 66 against 34.)
    cell = jaxrnn.LSTMCell(128)
    params = cell.init(jax.random.key(0), 128)

    def temp(time_major, remat):
        x = jax.ShapeDtypeStruct(
            (2048, 16, 128) if time_major else (16, 2048, 128), jnp.float32
        )

        def loss(params, x):
            return jnp.mean(
                jaxrnn.rnn(
                    cell, params, x, time_major=time_major, remat=remat
                )[0]
                ** 2
            )

        compiled = jax.jit(jax.grad(loss, (0, 1))).lower(params, x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    sequence_bytes = 16 * 2048 * 128 * 4
    for remat in (False, True):
        assert temp(False, remat) < temp(True, remat) + sequence_bytes


def test_backward_writes_a_shared_gradient_once(monkeypatch):
    # LSTM's gates add the two projections first, so both get the same
    # gradient: the backward loop writes that (S, B, 4H) sequence once.
    # Handing it a distinct (equal) recurrent gradient, as GRU's gates do,
    # costs a second sequence.
    cell = jaxrnn.LSTMCell(64)
    params = cell.init(jax.random.key(0), 64)
    x = jax.ShapeDtypeStruct((1, 512, 64), jnp.float32)

    def temp():
        def loss(params, x):
            return jnp.mean(jaxrnn.rnn(cell, params, x)[0] ** 2)

        compiled = jax.jit(jax.grad(loss, (0, 1))).lower(params, x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    shared = temp()
    gates_backward = _fused._gates_backward

    def apart(*args):
        d_prev, d_projected, d_recurrent = gates_backward(*args)
        return d_prev, d_projected, d_recurrent * 1.0 + 0.0

    monkeypatch.setattr(_fused, "_gates_backward", apart)
    sequence_bytes = 512 * 4 * 64 * 4
    assert shared <= temp() - sequence_bytes // 2


def _scans(jaxpr, enclosing=0):
    """Every scan equation of `jaxpr`, nested ones included, with the
    number of scans whose bodies enclose it."""
    for eqn in jaxpr.eqns:
        inner = enclosing
        if eqn.primitive.name == "scan":
            yield eqn, enclosing
            inner += 1
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _scans(sub, inner)


@pytest.mark.parametrize("masked", [False, True])
def test_backward_steps_carry_a_last_output_gradient_only_when_masked(masked):
    # Unmasked, the last output is the last step's and its gradient joins
    # that step's before the loops: the backward pass's step loop carries
    # the carry's gradient alone. Carried as zeros through every step it
    # cost a broadcast and two copies per step. With a mask it is each
    # row's last valid output, whose gradient does travel.
    cell = CELLS["lstm"]
    params, xs, keep, carry = _split_step_problem(cell, 5, masked)

    def loss(params, xs):
        # Blocks of 4 steps, 2 per chunk: a loop over blocks, each looping
        # over its steps.
        ys, _, last = split_step_scan(
            SplitStepPlan(cell, 2, 4, 1, "carries", False, 0),
            params,
            xs,
            keep,
            carry,
        )
        return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.cos(last))

    jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1)))(params, xs).jaxpr
    carry_leaves = len(jax.tree.leaves(carry))
    nested_carries = [
        eqn.params["num_carry"]
        for eqn, enclosing in _scans(jaxpr)
        if enclosing
    ]
    assert nested_carries == [carry_leaves + masked]


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("remat", [False, True])
def test_split_step_loops_carry_their_index_rather_than_scan_one(
    time_major, remat
):
    # A loop's piece index rides in its carry, where XLA merges it with the
    # loop's own counter; scanned from an arange it was an array to build
    # and read every iteration (3-8 more kernels in a training step).
    cell = CELLS["lstm"]
    params = cell.init(jax.random.key(0), 3)
    x = jax.random.normal(jax.random.key(1), (2, 40, 3))
    if time_major:
        x = jnp.swapaxes(x, 0, 1)

    def loss(params, x):
        ys, _ = jaxrnn.rnn(
            cell,
            params,
            x,
            time_major=time_major,
            go_backwards=True,
            remat=remat,
        )
        return jnp.sum(ys**2)

    jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1)))(params, x).jaxpr
    scans = [eqn for eqn, _ in _scans(jaxpr)]
    assert len(scans) >= 2
    for eqn in scans:
        scanned = eqn.invars[
            eqn.params["num_consts"] + eqn.params["num_carry"] :
        ]
        assert not any(
            jnp.issubdtype(v.aval.dtype, jnp.integer) for v in scanned
        ), eqn.params["jaxpr"]


@pytest.mark.parametrize("saved", ["carries", "projections", "chunk_carries"])
@pytest.mark.parametrize("time_major", [False, True])
def test_garbage_in_masked_steps_never_leaks_whatever_is_saved(
    saved, time_major, monkeypatch
):
    # The split-step scan zeroes masked inputs a chunk at a time, in the
    # forward pass and in the backward pass's recomputation alike.
    if saved == "projections":
        monkeypatch.setattr(
            _fused_plan, "SPLIT_STEP_KEEP_PROJECTIONS_WIDTH", 0
        )
    cell = CELLS["lstm"]
    keys = jax.random.split(jax.random.key(6), 3)
    params = cell.init(keys[0], 2)
    x = jax.random.normal(keys[1], (3, 11, 2))
    mask = jax.random.bernoulli(keys[2], 0.6, (3, 11))
    poisoned = jnp.where(mask[..., None], x, jnp.nan)
    if time_major:
        x, poisoned, mask = (
            jnp.swapaxes(a, 0, 1) for a in (x, poisoned, mask)
        )

    def loss(params, x):
        ys, carry = jaxrnn.rnn(
            cell,
            params,
            x,
            mask=mask,
            time_major=time_major,
            remat=saved == "chunk_carries",
        )
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

    step = jax.jit(jax.value_and_grad(loss, (0, 1)))
    clean, poisoned_run = step(params, x), step(params, poisoned)
    _assert_close(poisoned_run, clean, tol=1e-6)
    d_x = np.asarray(poisoned_run[1][1])
    np.testing.assert_array_equal(d_x[~np.asarray(mask)], 0)


def test_split_step_scan_names_what_it_can_save():
    cell = CELLS["lstm"]
    params = cell.init(jax.random.key(0), 3)
    args = (params, jnp.ones((5, 2, 3)), None, cell.initial_carry((2,)))
    with pytest.raises(ValueError, match="saved must be one of"):
        split_step_scan(SplitStepPlan(cell, 4, 8, 1, "gates", False, 0), *args)
    # Differentiation runs the forward rule, not the function: also checked.
    with pytest.raises(ValueError, match="saved must be one of"):
        jax.grad(
            lambda p: jnp.sum(
                split_step_scan(
                    SplitStepPlan(cell, 4, 8, 1, "gates", False, 0),
                    p,
                    *args[1:],
                )[0]
            )
        )(params)


def test_saved_projections_replace_the_recomputing_gemms():
    # The backward pass takes the saved projections, so the compiled
    # training step has the two projection GEMMs of each block fewer.
    cell = CELLS["lstm"]
    params = cell.init(jax.random.key(0), 3)
    xs = jnp.ones((12, 2, 3))

    def dots(saved):
        def loss(params, xs):
            ys, _, _ = split_step_scan(
                SplitStepPlan(cell, 4, 8, 1, saved, False, 0),
                params,
                xs,
                None,
                cell.initial_carry((2,)),
            )
            return jnp.sum(ys**2)

        text = (
            jax.jit(jax.grad(loss, (0, 1)))
            .lower(params, xs)
            .compile()
            .as_text()
        )
        return len(re.findall(r"\bdot\(", text))

    assert dots("projections") < dots("carries")


def test_rnn_saves_projections_only_for_wide_cells(monkeypatch):
    # Recomputing a narrow cell's projections is cheaper than keeping them
    # (SPLIT_STEP_KEEP_PROJECTIONS_WIDTH); a wide one keeps them.
    seen = []
    original = _engines.split_step_scan

    def spy(plan, *args):
        seen.append(plan.saved)
        return original(plan, *args)

    monkeypatch.setattr(_engines, "split_step_scan", spy)
    for units, remat in [(4, False), (4, True), (600, False), (600, True)]:
        cell = jaxrnn.LSTMCell(units)
        params = cell.init(jax.random.key(0), 200)
        jax.eval_shape(
            lambda p: jaxrnn.rnn(cell, p, jnp.ones((2, 5, 200)), remat=remat),
            params,
        )
    assert seen == ["carries", "chunk_carries", "projections", "chunk_carries"]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", [3, 8, 11])
def test_handing_pieces_on_runs_the_same_pieces(reverse, steps):
    # Each piece sees the carry of the pieces before it (after, reversed),
    # so the pieces must run in order, each exactly once.
    seq = {
        "a": jnp.arange(steps * 2.0).reshape(steps, 2),
        "b": jnp.arange(steps, dtype=jnp.float32),
    }
    per_piece = jnp.arange(-(-steps // 4), dtype=jnp.float32) * 100

    def body(carry, piece, entry):
        carry = carry * 3 + jnp.sum(piece["a"]) + jnp.sum(piece["b"]) + entry
        return carry, {"a": piece["a"] * carry, "b": piece["b"] + entry}

    def run(hand_on):
        return jax.jit(
            lambda seq: _scan_pieces(
                body,
                jnp.float32(1),
                seq,
                4,
                reverse=reverse,
                per_piece=per_piece,
                hand_on=hand_on,
            )
        )(seq)

    _assert_close(run(True), run(False), tol=0)


@pytest.mark.parametrize("size", [1, 2])
@pytest.mark.parametrize("hand_on", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_pieces_run_in_order_over_two_dimensional_loop_buffers(
    reverse, hand_on, size
):
    # Pieces (of one step: the backward pass's step-at-a-time blocks) run
    # in order, each once, the body seeing (size, ...) pieces; the loop's
    # own buffers are rows, (pieces, rest): with a unit axis (a piece of one
    # step, a batch of one) XLA:CPU copied each buffer between layouts on
    # every call.
    steps = 6
    seq = {
        "a": jnp.arange(steps * 2.0).reshape(steps, 1, 2),
        "b": jnp.arange(steps, dtype=jnp.float32),
    }
    per_piece = jnp.arange(steps // size * 2.0).reshape(-1, 1, 2) * 100

    def body(carry, piece, entry):
        assert piece["a"].shape == (size, 1, 2)
        assert piece["b"].shape == (size,) and entry.shape == (1, 2)
        carry = (
            carry * 3
            + jnp.sum(piece["a"])
            + jnp.sum(piece["b"])
            + jnp.sum(entry)
        )
        return carry, {
            "a": piece["a"] * carry + entry,
            "first": carry[None, None],
        }

    def run(seq):
        return _scan_pieces(
            body,
            jnp.float32(1),
            seq,
            size,
            reverse=reverse,
            per_piece=per_piece,
            hand_on=hand_on,
        )

    carry, outs = jnp.float32(1), []
    starts = range(0, steps, size)
    for start in reversed(starts) if reverse else starts:
        carry, out = body(
            carry,
            jax.tree.map(lambda a: a[start : start + size], seq),
            per_piece[start // size],
        )
        outs.append(out)
    if reverse:
        outs.reverse()
    expected = (carry, jax.tree.map(lambda *o: jnp.concatenate(o), *outs))
    _assert_close(jax.jit(run)(seq), expected, tol=0)

    loops = [
        e
        for e in jax.make_jaxpr(run)(seq).jaxpr.eqns
        if e.primitive.name == "scan"
    ]
    assert loops
    for loop in loops:
        for var in (*loop.invars, *loop.outvars):
            assert var.aval.ndim <= 2 and 1 not in var.aval.shape[1:], (
                var.aval.shape
            )


def test_mixed_precision_gradients():
    cell = jaxrnn.LSTMCell(6, dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(0), 4)
    x = jax.random.normal(jax.random.key(1), (2, 9, 4))
    fused = _grads(cell, params, x, cell.initial_carry((2,)), None, 1)
    reference = _grads(cell, params, x, cell.initial_carry((2,)), None, True)
    for u, v in zip(jax.tree.leaves(fused), jax.tree.leaves(reference)):
        assert u.dtype == v.dtype
    _assert_close(fused, reference, tol=0.1)


@dataclasses.dataclass(frozen=True)
class _Minimal:
    """A custom cell that offers the split step: h' = tanh(x W + h U)."""

    units: int = 4

    def init(self, key, input_dim):
        k1, k2 = jax.random.split(key)
        return {
            "w": jax.random.normal(k1, (input_dim, self.units)),
            "u": jax.random.normal(k2, (self.units, self.units)) * 0.3,
        }

    def initial_carry(self, batch_shape=()):
        return jnp.zeros((*batch_shape, self.units))

    def __call__(self, params, carry, x, *, key=None, training=False):
        return self.apply_gates(
            carry,
            self.project_inputs(params, x),
            self.project_recurrent(params, carry),
        )

    def project_inputs(self, params, xs, dropout=None):
        return xs @ params["w"]

    def recurrent_input(self, carry, dropout, dtype):
        return carry.astype(dtype)

    def project_recurrent(self, params, h_in):
        return h_in @ params["u"]

    def apply_gates(self, carry, projected, recurrent):
        h = jnp.tanh(projected + recurrent)
        return h, h

    def dropout_masks(self, key, batch_shape, input_dim, *, training):
        return None

    def step_projected(self, params, carry, projected, dropout=None):
        return self.apply_gates(
            carry, projected, self.project_recurrent(params, carry)
        )


def test_custom_cell_opts_in():
    cell = _Minimal()
    assert has_split_step(cell)
    params = cell.init(jax.random.key(0), 3)
    x = jax.random.normal(jax.random.key(1), (2, 7, 3))
    mask = jnp.array([[True] * 7, [True] * 4 + [False] * 3])
    carry = cell.initial_carry((2,))
    _assert_close(
        _grads(cell, params, x, carry, mask, 1),
        _grads(cell, params, x, carry, mask, True),
    )


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_cells_holding_masked_steps_by_their_gates_match_a_select(name):
    # LSTMCell and GRUCell hold a masked step's carry through their gates
    # (`gates_take_keep`); the same cell without it gets `_fused`'s select.
    cell = CELLS[name]
    selected = type("Selected", (type(cell),), {"gates_take_keep": False})(5)
    params = cell.init(jax.random.key(0), 3)
    x = jax.random.normal(jax.random.key(1), (3, 10, 3))
    carry = jax.tree.map(
        lambda leaf: jax.random.normal(jax.random.key(2), leaf.shape),
        cell.initial_carry((3,)),
    )
    mask = jax.random.bernoulli(jax.random.key(3), 0.5, (3, 10))
    _assert_close(
        _grads(cell, params, x, carry, mask, 1),
        _grads(selected, params, x, carry, mask, 1),
        tol=1e-6,
    )


def test_masked_outputs_rules():
    ys = jnp.arange(1.0, 7.0).reshape(3, 2, 1)  # (T, B, 1)
    keep = jnp.array([[False, True], [True, False], [False, False]])
    zeros = jnp.zeros((2, 1))
    repeated, last = masked_chunk_outputs(ys, keep, zeros, zero_output=False)
    np.testing.assert_array_equal(repeated[..., 0], [[0, 2], [3, 2], [3, 2]])
    np.testing.assert_array_equal(last[:, 0], [3, 2])
    zeroed, last = masked_chunk_outputs(ys, keep, zeros, zero_output=True)
    np.testing.assert_array_equal(zeroed[..., 0], [[0, 2], [3, 0], [0, 0]])
    np.testing.assert_array_equal(last[:, 0], [3, 2])
    none, last = masked_chunk_outputs(
        ys, jnp.zeros((3, 2), bool), zeros, False
    )
    assert not none.any() and not last.any()
    # A chunk carries on from the last valid output of the chunk before.
    before = jnp.array([[7.0], [8.0]])
    carried, last = masked_chunk_outputs(ys, keep, before, zero_output=False)
    np.testing.assert_array_equal(carried[..., 0], [[7, 2], [3, 2], [3, 2]])


def test_training_with_dropout_uses_autodiff_and_runs():
    cell = jaxrnn.LSTMCell(4, dropout=0.3, recurrent_dropout=0.2)
    params = cell.init(jax.random.key(0), 3)
    x = jnp.ones((2, 5, 3))

    def loss(params):
        ys, _ = jaxrnn.rnn(
            cell, params, x, key=jax.random.key(1), training=True
        )
        return jnp.sum(ys)

    grads = jax.grad(loss)(params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_forward_mode_takes_the_plain_scan():
    """The custom VJP has no JVP rule: where `rnn` sees forward-mode
    tangents (jvp, jacfwd, hessian) it runs the plain scan, whose JVP JAX
    derives, so no `unroll=True` is needed (tests/test_rnn_errors.py
    compares jvp and jacfwd with the unrolled run)."""
    cell = jaxrnn.SimpleRNNCell(3)
    params = cell.init(jax.random.key(0), 2)
    x = jnp.ones((1, 4, 2))
    jac = jax.jacfwd(lambda x: jaxrnn.rnn(cell, params, x)[0])(x)
    unrolled = jax.jacfwd(
        lambda x: jaxrnn.rnn(cell, params, x, unroll=True)[0]
    )(x)
    rev = jax.jacrev(lambda x: jaxrnn.rnn(cell, params, x)[0])(x)
    np.testing.assert_allclose(jac, unrolled, atol=1e-6)
    np.testing.assert_allclose(jac, rev, atol=1e-6)


def test_layers_unroll_false_keeps_a_rolled_scan():
    """`unroll=False` (the layers' default) is scan's unroll=1, not 0 (which
    lax.scan reads as unrolling the whole loop: minutes of compiling)."""
    layer = jaxrnn.LSTM(4, return_sequences=True)
    params = layer.init(jax.random.key(0), (2, 64, 3))
    x = jnp.ones((2, 64, 3))
    jaxpr = jax.make_jaxpr(jax.grad(lambda p: jnp.sum(layer(p, x))))(params)
    found = [eqn for eqn, _ in _scans(jaxpr.jaxpr)]
    assert found and all(eqn.params["unroll"] == 1 for eqn in found)
