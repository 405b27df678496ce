"""jaxrnn/_validation.py on its own: what each check lets through, and for
each kind of bad input the exception type and a message that names the
argument."""

import re
import types

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from properties import examples

from jaxrnn._validation import (
    batch_shape_of,
    check_bool,
    check_floating,
    check_one_of,
    check_params,
    check_positive_int,
    check_prng_key,
    check_rate,
    check_shape,
    check_tree_like,
    describe,
)

PROPERTY = settings(
    max_examples=examples(5, 100), deadline=None, derandomize=True
)


# --- describe ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (jnp.ones((2, 3)), "ArrayImpl of shape (2, 3) and dtype float32"),
        (np.ones(4, np.float64), "ndarray of shape (4,) and dtype float64"),
        (np.int64(3), "int64 of shape () and dtype int64"),
        (
            jax.ShapeDtypeStruct((5,), jnp.bfloat16),
            "ShapeDtypeStruct of shape (5,) and dtype bfloat16",
        ),
        ([jnp.ones(1), jnp.ones(1)], "list of length 2"),
        ((1, (2, 3)), "tuple of length 2"),
        (list(range(9)), "list of length 9"),
        ([1, 2], "[1, 2] of type list"),
        (list(range(8)), "[0, 1, 2, 3, 4, 5, 6, 7] of type list"),
        ((), "() of type tuple"),
        ("tanh", "'tanh' of type str"),
        (None, "None of type NoneType"),
        (2.5, "2.5 of type float"),
    ],
    ids=[
        "jax_array",
        "numpy_array",
        "numpy_scalar",
        "shape_dtype_struct",
        "list_of_arrays",
        "nested_tuple",
        "long_list",
        "short_list",
        "list_of_8",
        "empty_tuple",
        "str",
        "None",
        "float",
    ],
)
def test_describe(value, expected):
    assert describe(value) == expected


def test_describe_gives_a_big_array_in_one_line():
    text = describe(np.zeros((1000, 1000)))
    assert text == "ndarray of shape (1000, 1000) and dtype float64"


def test_describe_a_tracer_under_jit():
    seen = []

    @jax.jit
    def probe(x):
        seen.append(describe(x))
        return x

    probe(jnp.ones((2, 3), jnp.float16))
    assert re.fullmatch(
        r"\w*Tracer of shape \(2, 3\) and dtype float16", seen[0]
    )


# --- check_prng_key ----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: jax.random.key(0),
        lambda: jax.random.PRNGKey(0),
        lambda: jax.random.split(jax.random.key(0), 3),
        lambda: jax.random.split(jax.random.PRNGKey(0), 3),
        lambda: np.array([0, 1], np.uint32),
    ],
    ids=["typed", "legacy", "typed_batch", "legacy_batch", "numpy_uint32"],
)
def test_prng_keys_pass(make):
    assert check_prng_key("key", make()) is None


def test_a_traced_prng_key_passes_under_jit():
    @jax.jit
    def probe(key):
        check_prng_key("key", key)
        return jax.random.uniform(key)

    assert 0.0 <= float(probe(jax.random.key(1))) < 1.0


@pytest.mark.parametrize(
    "value, described",
    [
        (0, "0 of type int"),
        (None, "None of type NoneType"),
        (
            jnp.array([0, 1], jnp.int32),
            "ArrayImpl of shape (2,) and dtype int32",
        ),
        (jnp.array([0.0, 1.0]), "ArrayImpl of shape (2,) and dtype float32"),
        (
            jnp.array([0, 1, 2], jnp.uint32),
            "ArrayImpl of shape (3,) and dtype uint32",
        ),
        (jnp.array(7, jnp.uint32), "ArrayImpl of shape () and dtype uint32"),
        ([0, 1], "[0, 1] of type list"),
    ],
    ids=[
        "int",
        "None",
        "int32_pair",
        "float_pair",
        "uint32_triple",
        "uint32_scalar",
        "list",
    ],
)
def test_non_keys_are_refused(value, described):
    with pytest.raises(
        TypeError,
        match=re.escape(
            f"`key` must be a PRNG key such as jax.random.key(0), got "
            f"{described}."
        ),
    ):
        check_prng_key("key", value)


# --- check_positive_int ------------------------------------------------------


@pytest.mark.parametrize(
    "value", [1, 7, np.int64(3), np.int32(2), np.uint8(1)]
)
def test_positive_ints_pass(value):
    assert check_positive_int("units", value) is None


@pytest.mark.parametrize("value", [0, -1, np.int64(0)])
def test_non_positive_ints_are_value_errors(value):
    with pytest.raises(
        ValueError,
        match=re.escape(f"`units` must be a positive int, got {value}."),
    ):
        check_positive_int("units", value)


@pytest.mark.parametrize(
    "value",
    [True, False, np.bool_(True), 2.0, "3", None, jnp.array(3), [3]],
    ids=[
        "True",
        "False",
        "np_bool",
        "float",
        "str",
        "None",
        "jax_scalar",
        "list",
    ],
)
def test_non_ints_are_type_errors(value):
    with pytest.raises(TypeError, match="`units` must be a positive int, got"):
        check_positive_int("units", value)


# --- batch_shape_of ----------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, (3,)),
        (0, (0,)),
        (np.int64(2), (2,)),
        ((), ()),
        ((2, 3), (2, 3)),
        ([4], (4,)),
        ((np.int32(2), 5), (2, 5)),
        (range(2), (0, 1)),
    ],
    ids=[
        "int",
        "zero",
        "numpy_int",
        "empty",
        "tuple",
        "list",
        "numpy_entries",
        "range",
    ],
)
def test_batch_shape_of_normalises_to_a_tuple_of_ints(value, expected):
    got = batch_shape_of(value)
    assert got == expected
    assert type(got) is tuple and all(type(n) is int for n in got)


@pytest.mark.parametrize(
    "value",
    [
        2.0,
        "3",
        b"3",
        None,
        True,
        (2.0,),
        (True,),
        (2, None),
        np.array([2, 3]),
        {2: 3},
    ],
    ids=[
        "float",
        "str",
        "bytes",
        "None",
        "bool",
        "float_entry",
        "bool_entry",
        "None_entry",
        "ndarray",
        "dict",
    ],
)
def test_batch_shape_of_refuses_non_int_shapes(value):
    with pytest.raises(
        TypeError,
        match=re.escape(
            "`batch_shape` must be an int B or a tuple of ints such as (B,), "
            f"got {describe(value)}."
        ),
    ):
        batch_shape_of(value)


@pytest.mark.parametrize(
    "value, shown", [(-1, "(-1,)"), ((2, -3), "(2, -3)"), ([-1], "(-1,)")]
)
def test_batch_shape_of_refuses_negative_sizes(value, shown):
    with pytest.raises(
        ValueError,
        match=re.escape(f"`batch_shape` must hold sizes >= 0, got {shown}."),
    ):
        batch_shape_of(value)


@PROPERTY
@given(st.lists(st.integers(0, 50), max_size=4))
def test_batch_shape_of_keeps_any_tuple_or_list_of_sizes(sizes):
    assert batch_shape_of(tuple(sizes)) == tuple(sizes)
    assert batch_shape_of(sizes) == tuple(sizes)


# --- check_rate --------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [0, 0.0, 0.5, 0.999, np.float32(0.25), np.float64(0.1)]
)
def test_rates_in_0_to_1_pass(value):
    assert check_rate("dropout", value) is None


@pytest.mark.parametrize(
    "value", [1.0, 1, -0.1, 2.5, float("nan"), float("inf")]
)
def test_rates_outside_0_to_1_are_value_errors(value):
    with pytest.raises(
        ValueError,
        match=re.escape(f"`dropout` must be in [0, 1), got {value}."),
    ):
        check_rate("dropout", value)


@pytest.mark.parametrize(
    "value",
    [True, "0.5", None, jnp.array(0.5), 0.5j],
    ids=["bool", "str", "None", "jax_scalar", "complex"],
)
def test_non_real_rates_are_type_errors(value):
    with pytest.raises(
        TypeError,
        match=re.escape(
            f"`dropout` must be a float in [0, 1), got {describe(value)}."
        ),
    ):
        check_rate("dropout", value)


# --- check_bool --------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_bools_pass(value):
    assert check_bool("return_sequences", value) is None


@pytest.mark.parametrize(
    "value",
    [1, 0, None, "True", np.bool_(True), jnp.array(True)],
    ids=["1", "0", "None", "str", "np_bool", "jax_bool"],
)
def test_non_bools_are_type_errors(value):
    with pytest.raises(
        TypeError,
        match=re.escape(f"`return_sequences` must be a bool, got {value!r}."),
    ):
        check_bool("return_sequences", value)


# --- check_one_of ------------------------------------------------------------


@pytest.mark.parametrize("value", ["concat", "sum", None])
def test_allowed_values_pass(value):
    assert check_one_of("merge_mode", value, ("concat", "sum", None)) is None


@pytest.mark.parametrize("value", ["Concat", "average", "", 0])
def test_other_values_are_value_errors(value):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`merge_mode` must be one of ['concat', 'sum', None], "
            f"got {value!r}."
        ),
    ):
        check_one_of("merge_mode", value, ("concat", "sum", None))


def test_an_array_value_is_refused_by_name():
    with pytest.raises(ValueError, match="`padding` must be one of"):
        check_one_of("padding", np.array([1, 2]), ["valid", "same"])


# --- check_shape -------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.zeros((8, 20)), (8, 20)),
        (np.zeros((8, 20)), (None, 20)),
        (np.zeros((8, 20)), (None, None)),
        (np.zeros(()), ()),
        (np.zeros((0, 3)), (0, 3)),
        ([[1.0, 2.0]], (1, 2)),
        (jax.ShapeDtypeStruct((2, 5), jnp.float32), (2, None)),
    ],
    ids=[
        "exact",
        "wildcard",
        "all_wildcards",
        "scalar",
        "empty",
        "list",
        "shape_dtype_struct",
    ],
)
def test_matching_shapes_pass(value, expected):
    assert check_shape("mask", value, expected) is None


@pytest.mark.parametrize(
    "value, expected, message",
    [
        (
            np.zeros((8, 19)),
            (8, 20),
            "`mask` must have shape (8, 20), got (8, 19).",
        ),
        (np.zeros((8,)), (8, 20), "`mask` must have shape (8, 20), got (8,)."),
        (
            np.zeros((8, 20, 1)),
            (8, 20),
            "`mask` must have shape (8, 20), got (8, 20, 1).",
        ),
        (np.zeros((3,)), (4,), "`mask` must have shape (4,), got (3,)."),
        (
            np.zeros((3, 4)),
            (None, 5),
            "`mask` must have shape (*, 5), got (3, 4).",
        ),
        (np.zeros((1,)), (), "`mask` must have shape (), got (1,)."),
        (np.zeros(()), (None,), "`mask` must have shape (*,), got ()."),
    ],
    ids=[
        "size",
        "rank_low",
        "rank_high",
        "one_axis",
        "wildcard",
        "scalar_wanted",
        "wildcard_one_axis",
    ],
)
def test_other_shapes_are_value_errors_showing_both(value, expected, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_shape("mask", value, expected)


def test_check_shape_on_a_tracer_under_jit():
    @jax.jit
    def probe(x):
        check_shape("mask", x, (None, 3))
        return x.sum()

    assert float(probe(jnp.ones((2, 3)))) == 6.0
    with pytest.raises(
        ValueError,
        match=re.escape("`mask` must have shape (*, 3), got (2, 4)."),
    ):
        probe(jnp.ones((2, 4)))


# --- check_floating ----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        jnp.ones(2),
        jnp.ones(2, jnp.float16),
        jnp.ones(2, jnp.bfloat16),
        np.ones(2),
        np.float32(1.0),
        1.0,
        jax.ShapeDtypeStruct((2,), jnp.float32),
    ],
    ids=[
        "float32",
        "float16",
        "bfloat16",
        "numpy_float64",
        "numpy_scalar",
        "python_float",
        "shape_dtype_struct",
    ],
)
def test_floating_values_pass(value):
    assert check_floating("inputs", value) is None


@pytest.mark.parametrize(
    "value, dtype",
    [
        (jnp.ones(2, jnp.int32), "int32"),
        (jnp.ones(2, bool), "bool"),
        (np.ones(2, np.uint8), "uint8"),
        (jnp.ones(2, jnp.complex64), "complex64"),
        (1, "int32"),
        (True, "bool"),
    ],
    ids=["int32", "bool", "uint8", "complex64", "python_int", "python_bool"],
)
def test_non_floating_values_are_type_errors(value, dtype):
    with pytest.raises(
        TypeError,
        match=re.escape(f"`inputs` must have a floating dtype, got {dtype}."),
    ):
        check_floating("inputs", value)


@pytest.mark.parametrize(
    "value",
    [None, "float32", jnp.float32, "abc"],
    ids=["None", "dtype_name", "dtype_type", "str"],
)
def test_non_arrays_are_refused_by_name(value):
    with pytest.raises(TypeError, match="`inputs` must have a floating dtype"):
        check_floating("inputs", value)


def test_check_floating_on_a_tracer_under_jit():
    @jax.jit
    def probe(x):
        check_floating("inputs", x)
        return x * 2

    np.testing.assert_array_equal(
        probe(jnp.ones(2, jnp.bfloat16)), jnp.full(2, 2, jnp.bfloat16)
    )
    with pytest.raises(
        TypeError, match="`inputs` must have a floating dtype, got int32"
    ):
        probe(jnp.ones(2, jnp.int32))


# --- check_params ------------------------------------------------------------

EXPECTED = {"kernel": (2, 3), "bias": (3,)}


def _params(**overrides):
    params = {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}
    params.update(overrides)
    return params


@pytest.mark.parametrize(
    "params",
    [
        _params(),
        _params(
            kernel=jnp.ones((2, 3), jnp.bfloat16),
            bias=jnp.ones(3, jnp.float16),
        ),
        {"kernel": np.ones((2, 3)), "bias": [0.0, 0.0, 0.0]},
        {
            "kernel": jax.ShapeDtypeStruct((2, 3), jnp.float32),
            "bias": jax.ShapeDtypeStruct((3,), jnp.float32),
        },
        types.MappingProxyType(_params()),
    ],
    ids=[
        "float32",
        "half_precision",
        "numpy_and_list",
        "shape_dtype_structs",
        "read_only_mapping",
    ],
)
def test_fitting_params_pass(params):
    assert check_params("LSTMCell", params, EXPECTED) is None


def test_params_with_no_arrays_pass_an_empty_expectation():
    assert check_params("Dropout", {}, {}) is None


@pytest.mark.parametrize(
    "params",
    [[jnp.ones((2, 3)), jnp.zeros(3)], None, (("kernel", jnp.ones((2, 3))),)],
    ids=["list", "None", "tuple_of_pairs"],
)
def test_params_that_are_no_mapping_are_type_errors(params):
    with pytest.raises(
        TypeError,
        match=re.escape(
            "LSTMCell params must be a dict with keys ['bias', 'kernel'], "
            f"got {type(params).__name__}."
        ),
    ):
        check_params("LSTMCell", params, EXPECTED)


def test_missing_params_are_named():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "LSTMCell params are missing ['bias']; expected keys "
            "['bias', 'kernel'], got ['kernel']."
        ),
    ):
        check_params("LSTMCell", {"kernel": jnp.ones((2, 3))}, EXPECTED)


def test_unexpected_params_are_named():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "LSTMCell params have unexpected keys ['recurrent_kernel']; "
            "expected ['bias', 'kernel']."
        ),
    ):
        check_params(
            "LSTMCell", _params(recurrent_kernel=jnp.ones((3, 3))), EXPECTED
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"kernel": jnp.ones((3, 2))},
            "LSTMCell params['kernel'] must have shape (2, 3), got (3, 2).",
        ),
        (
            {"bias": jnp.zeros((1, 3))},
            "LSTMCell params['bias'] must have shape (3,), got (1, 3).",
        ),
        (
            {"bias": 0.0},
            "LSTMCell params['bias'] must have shape (3,), got ().",
        ),
    ],
    ids=["transposed", "extra_axis", "scalar"],
)
def test_params_of_the_wrong_shape_are_value_errors(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_params("LSTMCell", _params(**overrides), EXPECTED)


@pytest.mark.parametrize(
    "bias, dtype",
    [
        (jnp.zeros(3, jnp.int32), "int32"),
        (jnp.zeros(3, bool), "bool"),
        (jnp.zeros(3, jnp.complex64), "complex64"),
        ([0, 0, 0], "int64"),
        (np.array([None] * 3), "object"),
    ],
    ids=["int32", "bool", "complex64", "int_list", "object"],
)
def test_params_of_a_non_floating_dtype_are_type_errors(bias, dtype):
    with pytest.raises(
        TypeError,
        match=re.escape(
            f"LSTMCell params['bias'] must have a floating dtype (float32, "
            f"bfloat16, ...), got {dtype}; cast it with "
            ".astype(jnp.float32)."
        ),
    ):
        check_params("LSTMCell", _params(bias=bias), EXPECTED)


def test_check_params_on_traced_params_under_jit():
    @jax.jit
    def probe(params):
        check_params("LSTMCell", params, EXPECTED)
        return params["kernel"].sum() + params["bias"].sum()

    assert float(probe(_params())) == 6.0
    with pytest.raises(
        ValueError,
        match=re.escape("LSTMCell params['kernel'] must have shape (2, 3)"),
    ):
        probe(_params(kernel=jnp.ones((2, 4))))


# --- check_tree_like ---------------------------------------------------------

REFERENCE = (jnp.zeros((2, 4)), jnp.zeros((2, 4)))  # an LSTM's (h, c)


@pytest.mark.parametrize(
    "value",
    [
        (jnp.ones((2, 4)), jnp.ones((2, 4))),
        (np.ones((2, 4), np.float16), jnp.ones((2, 4), jnp.int32)),
    ],
    ids=["same", "other_dtypes"],
)
def test_a_tree_of_the_same_structure_and_shapes_passes(value):
    # Only structure and shapes are the contract: dtypes are not compared.
    assert check_tree_like("initial_carry", value, REFERENCE) is None


@pytest.mark.parametrize(
    "value",
    [
        jnp.zeros((2, 4)),
        [jnp.zeros((2, 4)), jnp.zeros((2, 4))],
        (jnp.zeros((2, 4)),),
        {"h": jnp.zeros((2, 4)), "c": jnp.zeros((2, 4))},
    ],
    ids=["one_array", "list", "one_tuple", "dict"],
)
def test_a_tree_of_another_structure_is_a_value_error(value):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"`initial_carry` must have structure "
            f"{jax.tree.structure(REFERENCE)}, got "
            f"{jax.tree.structure(value)}."
        ),
    ):
        check_tree_like("initial_carry", value, REFERENCE)


@pytest.mark.parametrize(
    "value, index, got",
    [
        ((jnp.zeros((2, 4)), jnp.zeros((2, 5))), 1, "(2, 5)"),
        ((jnp.zeros((4,)), jnp.zeros((2, 4))), 0, "(4,)"),
    ],
    ids=["second_leaf", "first_leaf_unbatched"],
)
def test_a_leaf_of_another_shape_is_named_by_its_index(value, index, got):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"`initial_carry` leaf {index} must have shape (2, 4), got {got}."
        ),
    ):
        check_tree_like("initial_carry", value, REFERENCE)


def test_check_tree_like_on_traced_trees_under_jit():
    @jax.jit
    def probe(carry):
        check_tree_like("initial_carry", carry, REFERENCE)
        return carry[0] + carry[1]

    np.testing.assert_array_equal(
        probe((jnp.ones((2, 4)), jnp.ones((2, 4)))), jnp.full((2, 4), 2.0)
    )
    with pytest.raises(ValueError, match="`initial_carry` leaf 0 must have"):
        probe((jnp.ones((2, 3)), jnp.ones((2, 4))))
