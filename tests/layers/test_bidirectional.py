"""Bidirectional: Keras parity for every merge mode, states, masks."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import (
    assert_parity,
    params_from_keras,
    randomize_keras_weights,
)
from subsets import default_subset, pairwise

import jaxrnn

B, T, D = 3, 6, 5


def _inputs():
    return (
        np.random.default_rng(2).standard_normal((B, T, D)).astype("float32")
    )


def _mask():
    mask = np.ones((B, T), bool)
    mask[1, 4:] = False
    mask[2, :2] = False
    return mask


def _compare(keras_wrapper, ours, request, mask=None, initial_state=None):
    x = _inputs()
    keras_wrapper(x)
    randomize_keras_weights(keras_wrapper, 4)
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if initial_state is not None:
        kwargs["initial_state"] = initial_state
    theirs = keras_wrapper(x, **kwargs)
    params = params_from_keras(
        ours.init(jax.random.key(0), x.shape), keras_wrapper.get_weights()
    )
    mine = ours(
        params,
        jnp.asarray(x),
        **{k: jnp.asarray(v) if k == "mask" else v for k, v in kwargs.items()},
    )
    assert_parity(request.node.name, mine, theirs)


# Every (merge mode, return_sequences), (merge mode, masked) and
# (return_sequences, masked) pair by default: 10 of 20 cases.
@default_subset(
    pairwise(
        ("merge_mode", ["concat", "sum", "mul", "ave", None]),
        ("return_sequences", [True, False]),
        ("masked", [False, True]),
    )
)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_lstm_matches_keras(
    merge_mode, return_sequences, masked, request
):
    def make(m):
        return m.Bidirectional(
            m.LSTM(4, return_sequences=return_sequences, return_state=True),
            merge_mode=merge_mode,
        )

    _compare(
        make(keras.layers),
        make(jaxrnn),
        request,
        mask=_mask() if masked else None,
    )


@pytest.mark.parametrize("name", ["GRU", "SimpleRNN"])
@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_bidirectional_other_layers_match_keras(name, merge_mode, request):
    def make(m):
        return m.Bidirectional(
            getattr(m, name)(3, return_sequences=True), merge_mode=merge_mode
        )

    _compare(make(keras.layers), make(jaxrnn), request, mask=_mask())


def test_bidirectional_initial_state_matches_keras(request):
    def make(m):
        return m.Bidirectional(
            m.LSTM(4, return_sequences=True, return_state=True)
        )

    rng = np.random.default_rng(8)
    states = [rng.standard_normal((B, 4)).astype("float32") for _ in range(4)]
    _compare(make(keras.layers), make(jaxrnn), request, initial_state=states)


def test_explicit_backward_layer_matches_keras(request):
    def make(m):
        return m.Bidirectional(
            m.LSTM(4, return_sequences=True),
            backward_layer=m.GRU(4, return_sequences=True, go_backwards=True),
            merge_mode="sum",
        )

    _compare(make(keras.layers), make(jaxrnn), request, mask=_mask())


def test_returns_forward_then_backward_states(key):
    bi = jaxrnn.Bidirectional(jaxrnn.LSTM(4, return_state=True))
    params = bi.init(key, (B, T, D))
    output, f_h, f_c, b_h, b_c = bi(params, jnp.asarray(_inputs()))
    assert output.shape == (B, 8)
    assert f_h.shape == f_c.shape == b_h.shape == b_c.shape == (B, 4)
    np.testing.assert_allclose(output[:, :4], f_h)
    np.testing.assert_allclose(output[:, 4:], b_h)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
@pytest.mark.parametrize("return_state", [False, True])
def test_output_shape_and_param_count_match_keras(merge_mode, return_state):
    def make(m):
        return m.Bidirectional(
            m.GRU(5, return_sequences=True, return_state=return_state),
            merge_mode=merge_mode,
        )

    theirs, ours = make(keras.layers), make(jaxrnn)
    theirs.build((None, 7, 3))
    assert ours.param_count((None, 7, 3)) == theirs.count_params()
    want = theirs.compute_output_shape((None, 7, 3))
    got = ours.output_shape((None, 7, 3))
    if isinstance(want, tuple) and want and isinstance(want[0], tuple):
        want = [tuple(s) for s in want]
    assert got == (list(want) if isinstance(want, (list,)) else want)


def test_unknown_merge_mode():
    with pytest.raises(ValueError, match="merge_mode"):
        jaxrnn.Bidirectional(jaxrnn.LSTM(3), merge_mode="max")


def test_backward_layer_must_go_the_other_way():
    with pytest.raises(ValueError, match="go_backwards"):
        jaxrnn.Bidirectional(jaxrnn.LSTM(3), backward_layer=jaxrnn.LSTM(3))


def test_backward_layer_must_agree_on_return_sequences():
    with pytest.raises(ValueError, match="return_sequences"):
        jaxrnn.Bidirectional(
            jaxrnn.LSTM(3, return_sequences=True),
            backward_layer=jaxrnn.LSTM(3, go_backwards=True),
        )


def test_rejects_non_recurrent_layer():
    with pytest.raises(TypeError, match="recurrent layer"):
        jaxrnn.Bidirectional(jaxrnn.LSTMCell(3))


def test_rejects_odd_initial_state(key):
    bi = jaxrnn.Bidirectional(jaxrnn.LSTM(4))
    params = bi.init(key, (B, T, D))
    with pytest.raises(ValueError, match="even"):
        bi(
            params,
            jnp.asarray(_inputs()),
            initial_state=[jnp.zeros((B, 4))] * 3,
        )


def test_rejects_malformed_params(key):
    bi = jaxrnn.Bidirectional(jaxrnn.LSTM(4))
    params = bi.init(key, (B, T, D))
    with pytest.raises(ValueError, match="forward"):
        bi({"forward": params["forward"]}, jnp.asarray(_inputs()))


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave"])
def test_elementwise_merges_need_backward_layers_of_the_same_units(merge_mode):
    # Keras builds this and fails inside the merge when called.
    with pytest.raises(
        ValueError,
        match=rf"merge_mode='{merge_mode}'.*same "
        r"output size, got 4 and 5",
    ):
        jaxrnn.Bidirectional(
            jaxrnn.LSTM(4),
            merge_mode=merge_mode,
            backward_layer=jaxrnn.LSTM(5, go_backwards=True),
        )


def test_backward_layer_must_agree_on_return_state():
    with pytest.raises(ValueError, match="return_state"):
        jaxrnn.Bidirectional(
            jaxrnn.LSTM(3, return_state=True),
            backward_layer=jaxrnn.LSTM(3, go_backwards=True),
        )


@pytest.mark.parametrize("merge_mode", ["concat", None])
@pytest.mark.parametrize("return_state", [False, True])
def test_concat_and_none_take_backward_layers_of_other_units(
    merge_mode, return_state, key
):
    # As Keras' call does: concat gives (B, 4 + 5); Keras' own
    # compute_output_shape says 2 * 4, which its call contradicts.
    bi = jaxrnn.Bidirectional(
        jaxrnn.LSTM(4, return_state=return_state),
        merge_mode=merge_mode,
        backward_layer=jaxrnn.GRU(
            5, go_backwards=True, return_state=return_state
        ),
    )
    params = bi.init(key, (None, T, D))
    out = bi(params, jnp.asarray(_inputs()))
    got = [o.shape for o in out] if isinstance(out, list) else out.shape
    want = bi.output_shape((B, T, D))
    assert got == want
    assert (want[0] if isinstance(want, list) else want) == (
        (B, 9) if merge_mode == "concat" else (B, 4)
    )
