"""jaxrnn/_masking.py on its own: lengths to masks, per-row selects, the
forward fill of masked outputs and carry resets, on hand-computed cases and
against Python-loop references."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from properties import examples

from jaxrnn._masking import (
    broadcast_over,
    check_lengths_in_range,
    forward_fill,
    keep_where,
    latest_valid_steps,
    lengths_to_mask,
    masked_chunk_outputs,
    reset_carry,
)

PROPERTY = settings(
    max_examples=examples(5, 100), deadline=None, derandomize=True
)

# A (T, B) = (4, 3) mask with a hole (row 0), no valid step (row 1) and a
# left-padded-then-right-padded valid step (row 2), and what the helpers
# make of it by hand.
MASK = np.array(
    [
        [True, False, False],
        [False, False, True],
        [True, False, False],
        [False, False, False],
    ]
)
LATEST = np.array([[0, -1, -1], [0, -1, 1], [2, -1, 1], [2, -1, 1]])
# ys[t, b] = 10 t + b + 1: distinct and non-zero, so a wrong step or row shows.
YS = (10 * np.arange(4)[:, None] + np.arange(3) + 1).astype(np.float32)
FILLED = np.array(
    [[1, 0, 0], [1, 0, 13], [21, 0, 13], [21, 0, 13]], np.float32
)


def _forward_fill_loop(ys, mask, last=None):
    """Keras' rule step by step: a masked step repeats its row's last valid
    output (`last`, zeros by default, before the first)."""
    last = np.zeros(ys.shape[1:], ys.dtype) if last is None else last.copy()
    out = np.empty_like(ys)
    for t in range(ys.shape[0]):
        for b in range(ys.shape[1]):
            if mask[t, b]:
                last[b] = ys[t, b]
            out[t, b] = last[b]
    return out, last


def _latest_loop(mask):
    out = np.full(mask.shape, -1, np.int32)
    for b in range(mask.shape[1]):
        latest = -1
        for t in range(mask.shape[0]):
            latest = t if mask[t, b] else latest
            out[t, b] = latest
    return out


@st.composite
def masks(draw, max_steps=6, max_batch=4):
    """A random (T, B) bool mask, T >= 1, B >= 0."""
    steps = draw(st.integers(1, max_steps))
    batch = draw(st.integers(0, max_batch))
    return draw(hnp.arrays(np.bool_, (steps, batch)))


# --- lengths_to_mask ---------------------------------------------------------


@pytest.mark.parametrize(
    "lengths, steps, expected",
    [
        ([1, 3], 3, [[True, False, False], [True, True, True]]),
        (
            [0, 2, 3],
            3,
            [[False, False, False], [True, True, False], [True, True, True]],
        ),
        ([0, 1], 1, [[False], [True]]),
        ([0, 0], 0, np.zeros((2, 0), bool)),
    ],
    ids=["docstring", "none_some_all", "T=1", "T=0"],
)
def test_lengths_to_mask_right_pads(lengths, steps, expected):
    mask = lengths_to_mask(jnp.array(lengths), steps)
    assert mask.dtype == jnp.bool_
    np.testing.assert_array_equal(mask, np.array(expected, bool))


def test_lengths_to_mask_of_an_empty_batch_is_empty():
    mask = lengths_to_mask(jnp.zeros((0,), jnp.int32), 5)
    assert mask.shape == (0, 5) and mask.dtype == jnp.bool_


def test_lengths_to_mask_adds_T_after_any_leading_shape():
    mask = lengths_to_mask(jnp.array([[0, 1], [2, 3]]), 3)
    np.testing.assert_array_equal(
        mask,
        [
            [[False, False, False], [True, False, False]],
            [[True, True, False], [True, True, True]],
        ],
    )


def test_lengths_to_mask_of_a_scalar_length_is_one_row():
    np.testing.assert_array_equal(
        lengths_to_mask(jnp.array(2), 3), [True, True, False]
    )


@pytest.mark.parametrize(
    "lengths",
    [
        [1, 2],
        np.array([1, 2], np.int64),
        np.array([1, 2], np.int32),
        jnp.array([1, 2], jnp.int32),
    ],
    ids=["list", "np_int64", "np_int32", "jnp"],
)
def test_lengths_to_mask_takes_lists_and_numpy_ints(lengths):
    np.testing.assert_array_equal(
        lengths_to_mask(lengths, 2), [[True, False], [True, True]]
    )


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.int16, jnp.uint8, jnp.uint32])
def test_lengths_to_mask_takes_narrow_ints_under_standard_promotion(dtype):
    with jax.numpy_dtype_promotion("standard"):
        mask = lengths_to_mask(jnp.array([0, 2], dtype), 2)
    np.testing.assert_array_equal(mask, [[False, False], [True, True]])


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.int16, jnp.uint8, jnp.uint32])
def test_lengths_to_mask_takes_narrow_ints_under_strict_promotion(dtype):
    with jax.numpy_dtype_promotion("strict"):
        mask = lengths_to_mask(jnp.array([0, 2], dtype), 2)
    np.testing.assert_array_equal(mask, [[False, False], [True, True]])


@pytest.mark.parametrize(
    "lengths",
    [
        jnp.array([1.0, 2.0]),
        jnp.array([True, False]),
        jnp.array([1, 2], jnp.bfloat16),
    ],
    ids=["float32", "bool", "bfloat16"],
)
def test_lengths_to_mask_refuses_non_integer_lengths(lengths):
    with pytest.raises(
        TypeError, match="`seq_lengths` must have an integer dtype"
    ):
        lengths_to_mask(lengths, 3)


@pytest.mark.parametrize(
    "lengths, low, high", [([-1, 2], -1, 2), ([0, 4], 0, 4), ([-2, 5], -2, 5)]
)
def test_lengths_to_mask_refuses_concrete_lengths_outside_0_to_T(
    lengths, low, high
):
    with pytest.raises(
        ValueError,
        match=(
            rf"`seq_lengths` must lie in \[0, T\] = \[0, 3\], got values "
            rf"from {low} to {high}"
        ),
    ):
        lengths_to_mask(jnp.array(lengths), 3)


def test_lengths_to_mask_under_jit_clamps_what_it_cannot_check():
    # Documented: traced lengths below 0 act as 0, above T as T.
    jitted = jax.jit(lengths_to_mask, static_argnums=1)
    np.testing.assert_array_equal(
        jitted(jnp.array([-1, 1, 5]), 3),
        [[False, False, False], [True, False, False], [True, True, True]],
    )


def test_lengths_to_mask_under_vmap_matches_the_batched_call():
    lengths = jnp.array([0, 2, 3])
    by_row = jax.vmap(lambda n: lengths_to_mask(n, 3))(lengths)
    np.testing.assert_array_equal(by_row, lengths_to_mask(lengths, 3))


@PROPERTY
@given(st.data())
def test_lengths_to_mask_is_arange_below_lengths(data):
    steps = data.draw(st.integers(0, 6))
    lengths = data.draw(
        hnp.arrays(
            np.int32,
            st.tuples(st.integers(0, 4)),
            elements=st.integers(0, steps),
        )
    )
    np.testing.assert_array_equal(
        lengths_to_mask(jnp.asarray(lengths), steps),
        np.arange(steps) < lengths[:, None],
    )


# --- check_lengths_in_range --------------------------------------------------


@pytest.mark.parametrize(
    "lengths, steps", [([0, 3], 3), ([3], 3), ([0], 0), ([], 0), ([], 4)]
)
def test_lengths_in_range_pass(lengths, steps):
    assert check_lengths_in_range(jnp.array(lengths, jnp.int32), steps) is None


def test_lengths_out_of_range_are_named_with_their_extremes():
    with pytest.raises(
        ValueError,
        match=(
            r"`seq_lengths` must lie in \[0, T\] = \[0, 2\], got values from "
            r"0 to 3; a length counts the valid steps of a right-padded row"
        ),
    ):
        check_lengths_in_range(jnp.array([0, 3, 1]), 2)


def test_traced_lengths_are_let_through():
    def probe(lengths):
        check_lengths_in_range(lengths, 2)
        return lengths + 1

    np.testing.assert_array_equal(jax.jit(probe)(jnp.array([-5, 9])), [-4, 10])


# --- broadcast_over ----------------------------------------------------------


@pytest.mark.parametrize(
    "keep_shape, leaf_shape, expected",
    [
        ((3,), (3,), (3,)),
        ((3,), (3, 4), (3, 1)),
        ((3,), (3, 2, 5), (3, 1, 1)),
        ((4, 3), (4, 3, 2), (4, 3, 1)),  # `rnn`'s (T, B) step mask
        ((0,), (0, 2), (0, 1)),
    ],
)
def test_broadcast_over_appends_unit_axes_up_to_the_leafs_rank(
    keep_shape, leaf_shape, expected
):
    keep = jnp.arange(int(np.prod(keep_shape))).reshape(keep_shape) % 2 == 0
    out = broadcast_over(keep, jnp.zeros(leaf_shape))
    assert out.shape == expected
    np.testing.assert_array_equal(out.reshape(keep_shape), keep)


def test_broadcast_over_selects_whole_rows():
    keep = jnp.array([True, False])
    leaf = jnp.arange(12.0).reshape(2, 2, 3)
    out = jnp.where(broadcast_over(keep, leaf), leaf, -1.0)
    np.testing.assert_array_equal(out[0], leaf[0])
    np.testing.assert_array_equal(out[1], -np.ones((2, 3)))


# --- keep_where --------------------------------------------------------------


def test_keep_where_without_keep_is_new_itself():
    new, old = {"h": jnp.ones(2)}, {"h": jnp.zeros(2)}
    assert keep_where(None, new, old) is new


def test_keep_where_picks_rows_leaf_by_leaf_over_a_pytree():
    keep = jnp.array([True, False, True])
    new = (jnp.array([1.0, 2.0, 3.0]), {"c": jnp.arange(6.0).reshape(3, 2)})
    old = (jnp.array([-1.0, -2.0, -3.0]), {"c": -jnp.ones((3, 2))})
    got = keep_where(keep, new, old)
    np.testing.assert_array_equal(got[0], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(got[1]["c"], [[0, 1], [-1, -1], [4, 5]])


@pytest.mark.parametrize(
    "keep, expected",
    [
        ([True, True], [[1, 2], [3, 4]]),
        ([False, False], [[0, 0], [0, 0]]),
    ],
    ids=["none_masked", "all_masked"],
)
def test_keep_where_with_all_or_no_rows_kept(keep, expected):
    new = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    got = keep_where(jnp.array(keep), new, jnp.zeros((2, 2)))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize(
    "old",
    [lambda dtype: jnp.ones((), dtype), lambda dtype: 1.0],
    ids=["array_scalar", "python_scalar"],
)
def test_keep_where_takes_scalar_olds_and_keeps_the_dtype(dtype, old):
    # The LSTM and GRU cells pass scalars: keep_where(keep, forget, ones(())).
    new = jnp.full((2, 3), 5.0, dtype)
    got = keep_where(jnp.array([False, True]), new, old(dtype))
    assert got.dtype == dtype
    np.testing.assert_array_equal(
        got.astype(jnp.float32), [[1.0] * 3, [5.0] * 3]
    )


def test_keep_where_on_an_empty_batch():
    got = keep_where(jnp.zeros((0,), bool), jnp.ones((0, 3)), jnp.zeros(()))
    assert got.shape == (0, 3)


def test_keep_where_under_jit():
    got = jax.jit(keep_where)(
        jnp.array([False, True]),
        (jnp.ones((2, 2)), jnp.ones(2)),
        (jnp.zeros((2, 2)), jnp.zeros(2)),
    )
    np.testing.assert_array_equal(got[0], [[0, 0], [1, 1]])
    np.testing.assert_array_equal(got[1], [0, 1])


@PROPERTY
@given(st.data())
def test_keep_where_is_numpy_where_row_by_row(data):
    batch = data.draw(st.integers(0, 4))
    keep = data.draw(hnp.arrays(np.bool_, (batch,)))
    new = np.arange(batch * 2, dtype=np.float32).reshape(batch, 2) + 1
    got = keep_where(jnp.asarray(keep), new, jnp.zeros((batch, 2)))
    np.testing.assert_array_equal(got, np.where(keep[:, None], new, 0.0))


# --- latest_valid_steps ------------------------------------------------------


def test_latest_valid_steps_by_hand():
    got = latest_valid_steps(jnp.asarray(MASK))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, LATEST)


@pytest.mark.parametrize(
    "column, expected",
    [
        ([False, False, True, True], [-1, -1, 2, 3]),
        ([True, True, False, False], [0, 1, 1, 1]),
        ([True, True, True, True], [0, 1, 2, 3]),
        ([False, False, False, False], [-1, -1, -1, -1]),
    ],
    ids=["left_padded", "right_padded", "none_masked", "all_masked"],
)
def test_latest_valid_steps_on_padded_rows(column, expected):
    got = latest_valid_steps(jnp.array(column)[:, None])
    np.testing.assert_array_equal(got[:, 0], expected)


@pytest.mark.parametrize(
    "shape", [(1, 3), (5, 0), (0, 2)], ids=["T=1", "B=0", "T=0"]
)
def test_latest_valid_steps_on_edge_shapes(shape):
    mask = np.ones(shape, bool)
    np.testing.assert_array_equal(
        latest_valid_steps(jnp.asarray(mask)),
        np.broadcast_to(np.arange(shape[0])[:, None], shape),
    )


def test_latest_valid_steps_under_jit():
    np.testing.assert_array_equal(
        jax.jit(latest_valid_steps)(jnp.asarray(MASK)), LATEST
    )


@PROPERTY
@given(masks())
def test_latest_valid_steps_matches_a_loop(mask):
    np.testing.assert_array_equal(
        latest_valid_steps(jnp.asarray(mask)), _latest_loop(mask)
    )


# --- forward_fill ------------------------------------------------------------


def test_forward_fill_by_hand():
    got = forward_fill(jnp.asarray(YS), jnp.asarray(LATEST))
    np.testing.assert_array_equal(got, FILLED)


def test_forward_fill_moves_whole_feature_rows():
    # (T, B, 3, 1): three features per step, and a trailing unit axis.
    ys = np.stack([YS, -YS, 2 * YS], axis=-1).reshape(4, 3, 3, 1)
    got = forward_fill(jnp.asarray(ys), jnp.asarray(LATEST))
    expected = np.stack([FILLED, -FILLED, 2 * FILLED], -1).reshape(4, 3, 3, 1)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.int32])
def test_forward_fill_keeps_the_dtype(dtype):
    got = forward_fill(jnp.asarray(YS, dtype), jnp.asarray(LATEST))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.astype(jnp.float32), FILLED)


def test_forward_fill_with_every_step_valid_is_the_identity():
    latest = latest_valid_steps(jnp.ones((4, 3), bool))
    np.testing.assert_array_equal(forward_fill(jnp.asarray(YS), latest), YS)


@pytest.mark.parametrize("shape", [(1, 2, 3), (3, 0, 2)], ids=["T=1", "B=0"])
def test_forward_fill_on_edge_shapes(shape):
    ys = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape) + 1
    mask = np.zeros(shape[:2], bool)
    mask[:, ::2] = True  # rows 0, 2, ... valid, the others never
    got = forward_fill(ys, latest_valid_steps(jnp.asarray(mask)))
    np.testing.assert_array_equal(
        got, _forward_fill_loop(np.asarray(ys), mask)[0]
    )


def test_forward_fill_under_jit():
    got = jax.jit(forward_fill)(jnp.asarray(YS), jnp.asarray(LATEST))
    np.testing.assert_array_equal(got, FILLED)


@PROPERTY
@given(masks(), st.integers(0, 2))
def test_forward_fill_matches_a_loop(mask, features):
    shape = mask.shape + (features,)
    ys = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1
    got = forward_fill(jnp.asarray(ys), latest_valid_steps(jnp.asarray(mask)))
    np.testing.assert_array_equal(got, _forward_fill_loop(ys, mask)[0])


# --- masked_chunk_outputs ----------------------------------------------------


def test_masked_chunk_outputs_without_a_mask_passes_ys_through():
    ys = jnp.asarray(YS)
    out, last = masked_chunk_outputs(ys, None, jnp.full((3,), 7.0), False)
    assert out is ys
    np.testing.assert_array_equal(last, YS[-1])


def test_masked_chunk_outputs_repeats_the_last_valid_output():
    out, last = masked_chunk_outputs(
        jnp.asarray(YS), jnp.asarray(MASK), jnp.zeros(3), False
    )
    np.testing.assert_array_equal(out, FILLED)
    np.testing.assert_array_equal(last, [21.0, 0.0, 13.0])


def test_masked_chunk_outputs_repeats_last_from_the_chunk_before():
    out, last = masked_chunk_outputs(
        jnp.asarray(YS),
        jnp.asarray(MASK),
        jnp.array([100.0, 200.0, 300.0]),
        False,
    )
    np.testing.assert_array_equal(
        out, [[1, 200, 300], [1, 200, 13], [21, 200, 13], [21, 200, 13]]
    )
    np.testing.assert_array_equal(last, [21.0, 200.0, 13.0])


def test_masked_chunk_outputs_zero_output_zeros_masked_steps():
    # zero_output changes the outputs only: `last` still follows valid steps.
    out, last = masked_chunk_outputs(
        jnp.asarray(YS),
        jnp.asarray(MASK),
        jnp.array([100.0, 200.0, 300.0]),
        True,
    )
    np.testing.assert_array_equal(out, np.where(MASK, YS, 0.0))
    np.testing.assert_array_equal(last, [21.0, 200.0, 13.0])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("zero_output", [False, True])
def test_masked_chunk_outputs_keeps_the_dtype(dtype, zero_output):
    out, last = masked_chunk_outputs(
        jnp.asarray(YS, dtype),
        jnp.asarray(MASK),
        jnp.zeros(3, dtype),
        zero_output,
    )
    assert out.dtype == dtype and last.dtype == dtype
    expected = np.where(MASK, YS, 0.0) if zero_output else FILLED
    np.testing.assert_array_equal(out.astype(jnp.float32), expected)


def test_masked_chunk_outputs_with_one_step_and_feature_axes():
    ys = jnp.array([[[1.0, 2.0], [3.0, 4.0]]])  # (K=1, B=2, 2)
    last_before = jnp.array([[9.0, 9.0], [8.0, 7.0]])
    out, last = masked_chunk_outputs(
        ys, jnp.array([[True, False]]), last_before, False
    )
    np.testing.assert_array_equal(out, [[[1, 2], [8, 7]]])
    np.testing.assert_array_equal(last, [[1, 2], [8, 7]])


def test_masked_chunk_outputs_on_an_empty_batch():
    out, last = masked_chunk_outputs(
        jnp.zeros((3, 0, 2)), jnp.zeros((3, 0), bool), jnp.zeros((0, 2)), False
    )
    assert out.shape == (3, 0, 2) and last.shape == (0, 2)


def test_masked_chunk_outputs_in_a_jitted_scan_over_chunks():
    # How `rnn` uses it: chunks of K = 2 steps in a scan threading `last`.
    def step(last, chunk):
        ys, keep = chunk
        out, last = masked_chunk_outputs(ys, keep, last, False)
        return last, out

    @jax.jit
    def run(ys, keep):
        return jax.lax.scan(
            step, jnp.zeros(3), (ys.reshape(2, 2, 3), keep.reshape(2, 2, 3))
        )

    last, out = run(jnp.asarray(YS), jnp.asarray(MASK))
    np.testing.assert_array_equal(out.reshape(4, 3), FILLED)
    np.testing.assert_array_equal(last, [21.0, 0.0, 13.0])


@PROPERTY
@given(masks(), st.integers(1, 3), st.booleans())
def test_masked_chunks_in_sequence_equal_one_forward_fill(
    mask, chunk, zero_output
):
    ys = np.arange(mask.size, dtype=np.float32).reshape(mask.shape) + 1
    last = jnp.zeros(mask.shape[1])
    pieces = []
    for start in range(0, mask.shape[0], chunk):
        out, last = masked_chunk_outputs(
            jnp.asarray(ys[start : start + chunk]),
            jnp.asarray(mask[start : start + chunk]),
            last,
            zero_output,
        )
        pieces.append(out)
    filled, want_last = _forward_fill_loop(ys, mask)
    expected = np.where(mask, ys, 0.0) if zero_output else filled
    np.testing.assert_array_equal(jnp.concatenate(pieces), expected)
    np.testing.assert_array_equal(last, want_last)


# --- reset_carry -------------------------------------------------------------


def test_reset_carry_zeros_the_selected_rows_of_every_leaf():
    carry = {
        "h": jnp.arange(1.0, 7.0).reshape(3, 2),
        "c": (jnp.arange(1.0, 4.0), jnp.ones((3, 2, 2))),
    }
    got = reset_carry(carry, jnp.array([False, True, False]))
    assert jax.tree.structure(got) == jax.tree.structure(carry)
    np.testing.assert_array_equal(got["h"], [[1, 2], [0, 0], [5, 6]])
    np.testing.assert_array_equal(got["c"][0], [1, 0, 3])
    np.testing.assert_array_equal(got["c"][1][:, 0, 0], [1, 0, 1])


@pytest.mark.parametrize(
    "reset, expected",
    [
        ([False, False], [[1, 2], [3, 4]]),
        ([True, True], [[0, 0], [0, 0]]),
    ],
    ids=["none_reset", "all_reset"],
)
def test_reset_carry_with_no_or_all_rows(reset, expected):
    got = reset_carry(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array(reset))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.int32])
def test_reset_carry_keeps_shapes_and_dtypes(dtype):
    got = reset_carry(jnp.ones((2, 3), dtype), jnp.array([True, False]))
    assert got.dtype == dtype and got.shape == (2, 3)
    np.testing.assert_array_equal(got.astype(jnp.float32)[:, 0], [0, 1])


def test_reset_carry_takes_a_list_of_bools():
    got = reset_carry(jnp.ones((2, 1)), [True, False])
    np.testing.assert_array_equal(got, [[0.0], [1.0]])


def test_reset_carry_on_an_empty_batch():
    got = reset_carry(
        (jnp.ones((0, 3)), jnp.ones((0, 3))), jnp.zeros((0,), bool)
    )
    assert [leaf.shape for leaf in got] == [(0, 3), (0, 3)]


def test_reset_carry_under_jit():
    h, c = jax.jit(reset_carry)(
        (jnp.ones((2, 3)), jnp.ones((2, 3))), jnp.array([True, False])
    )
    np.testing.assert_array_equal(h[:, 0], [0.0, 1.0])
    np.testing.assert_array_equal(c[:, 0], [0.0, 1.0])


@pytest.mark.parametrize(
    "reset_mask",
    [jnp.array([1, 0]), jnp.array([1.0, 0.0]), np.array([1, 0], np.uint8)],
    ids=["int32", "float32", "uint8"],
)
def test_reset_carry_refuses_non_bool_masks(reset_mask):
    with pytest.raises(TypeError, match="`reset_mask` must be a bool array"):
        reset_carry(jnp.ones((2, 3)), reset_mask)


@pytest.mark.parametrize(
    "reset_mask",
    [jnp.array(True), jnp.array([[True], [False]])],
    ids=["scalar", "(2, 1)"],
)
def test_reset_carry_refuses_masks_not_of_shape_B(reset_mask):
    with pytest.raises(
        ValueError, match=r"`reset_mask` must have shape \(B,\)"
    ):
        reset_carry(jnp.ones((2, 3)), reset_mask)


@pytest.mark.parametrize(
    "leaf, shape",
    [(jnp.ones((3, 4)), r"\(3, 4\)"), (jnp.ones(()), r"\(\)")],
    ids=["wrong_B", "scalar"],
)
def test_reset_carry_names_the_leaf_whose_batch_differs(leaf, shape):
    with pytest.raises(
        ValueError,
        match=(
            rf"carry leaf 1 must have shape \(2, \.\.\.\) to match "
            rf"`reset_mask`, got {shape}"
        ),
    ):
        reset_carry((jnp.ones((2, 4)), leaf), jnp.array([True, False]))


@PROPERTY
@given(st.data())
def test_reset_carry_is_numpy_where_row_by_row(data):
    batch = data.draw(st.integers(0, 4))
    reset = data.draw(hnp.arrays(np.bool_, (batch,)))
    carry = np.arange(batch * 3, dtype=np.float32).reshape(batch, 3) + 1
    np.testing.assert_array_equal(
        reset_carry(jnp.asarray(carry), jnp.asarray(reset)),
        np.where(reset[:, None], 0.0, carry),
    )
