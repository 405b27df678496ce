"""GRUCell specifics: the two bias layouts."""

import jaxrnn


def test_reset_after_bias_has_two_rows(key):
    assert jaxrnn.GRUCell(3).init(key, 2)["bias"].shape == (2, 9)


def test_reset_before_bias_is_flat(key):
    assert jaxrnn.GRUCell(3, reset_after=False).init(key, 2)["bias"].shape == (
        9,
    )


def test_no_bias(key):
    assert set(jaxrnn.GRUCell(3, use_bias=False).init(key, 2)) == {
        "kernel",
        "recurrent_kernel",
    }
