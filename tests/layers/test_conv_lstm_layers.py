"""ConvLSTM1D/2D/3D layers: Keras parity, shapes, counts, states, errors.

Keras' ConvLSTM layers run here with ``unroll=True`` unless a case is about
the scan: on the JAX backend Keras' scan path compiles for seconds per
layer, and with a mask it fails outright (it broadcasts the (B, 1) step mask
against (B, rows, cols, F) outputs). Its unrolled loop is the reference
semantics; jaxrnn's side runs its scan.

(Named ``test_conv_lstm_layers`` because tests/cells/test_conv_lstm.py holds
the basename: the test folders are not packages.)
"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import (
    assert_parity,
    param_shapes_for,
    params_from_keras,
    random_params_for,
    randomize_keras_weights,
)

from jaxrnn.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D

OURS = {
    "ConvLSTM1D": ConvLSTM1D,
    "ConvLSTM2D": ConvLSTM2D,
    "ConvLSTM3D": ConvLSTM3D,
}
B, T = 2, 4
FRAMES = {
    "ConvLSTM1D": (7, 2),
    "ConvLSTM2D": (6, 5, 2),
    "ConvLSTM3D": (3, 4, 4, 2),
}


# Keras' own initializers compile for seconds per new shape (orthogonal's QR
# above all); the weights are randomised anyway.
_FAST_INIT = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}


def _inputs(name, seed=0, frame=None):
    frame = frame or FRAMES[name]
    return (
        np.random.default_rng(seed)
        .standard_normal((B, T, *frame))
        .astype("float32")
    )


def _mask(kind):
    mask = np.ones((B, T), bool)
    if kind == "right":
        mask[1, 2:] = False
    elif kind == "holes":
        mask[0, 1] = mask[1, 0] = mask[1, 3] = False
    return None if kind == "none" else mask


def _run_both(
    name,
    kwargs,
    x,
    *,
    mask=None,
    initial_state=None,
    keras_unroll=True,
    seed=1,
):
    """Runs Keras' layer and ours with the same random weights; also checks
    the parameter count and the output shape against Keras'."""
    keras_layer = getattr(keras.layers, name)(
        unroll=keras_unroll, **_FAST_INIT, **kwargs
    )
    ours = OURS[name](**kwargs)
    keras_layer(x)  # builds the weights
    randomize_keras_weights(keras_layer, seed)
    call = {} if mask is None else {"mask": mask}
    if initial_state is not None:
        call["initial_state"] = initial_state
    theirs = keras_layer(x, **call)
    params = params_from_keras(
        param_shapes_for(ours, x.shape), keras_layer.get_weights()
    )
    assert ours.param_count(x.shape) == keras_layer.count_params()
    want = keras_layer.compute_output_shape((None, *x.shape[1:]))
    got = ours.output_shape((None, *x.shape[1:]))
    if kwargs.get("return_state"):
        assert got == [tuple(s) for s in want]
    else:
        assert got == tuple(want)
    jax_call = {
        k: (jnp.asarray(v) if k == "mask" else v) for k, v in call.items()
    }
    mine = jax.jit(lambda p, x: ours(p, x, **jax_call))(params, jnp.asarray(x))
    return mine, theirs


PARITY_CASES = [
    ("ConvLSTM2D", {"filters": 3, "kernel_size": 3}),
    (
        "ConvLSTM2D",
        {
            "filters": 3,
            "kernel_size": (2, 3),
            "padding": "same",
            "unit_forget_bias": False,
            "activation": "relu",
            "recurrent_activation": "hard_sigmoid",
        },
    ),
    (
        "ConvLSTM2D",
        {
            "filters": 2,
            "kernel_size": 3,
            "strides": 2,
            "use_bias": False,
            "return_sequences": False,
        },
    ),
    (
        "ConvLSTM2D",
        {"filters": 2, "kernel_size": 2, "strides": (2, 1), "padding": "same"},
    ),
    ("ConvLSTM2D", {"filters": 2, "kernel_size": 2, "dilation_rate": 2}),
    ("ConvLSTM1D", {"filters": 3, "kernel_size": 3}),
    (
        "ConvLSTM3D",
        {"filters": 2, "kernel_size": (1, 2, 3), "padding": "same"},
    ),
    pytest.param(
        "ConvLSTM2D",
        {
            "filters": 2,
            "kernel_size": 3,
            "dilation_rate": (1, 2),
            "padding": "same",
        },
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "ConvLSTM2D",
        {"filters": 3, "kernel_size": 3, "use_bias": False},
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "ConvLSTM1D",
        {
            "filters": 2,
            "kernel_size": 2,
            "strides": 2,
            "padding": "same",
            "return_sequences": False,
        },
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("name,kwargs", PARITY_CASES)
def test_layer_matches_keras(name, kwargs, request):
    kwargs = {"return_sequences": True, "return_state": True, **kwargs}
    mine, theirs = _run_both(name, kwargs, _inputs(name))
    assert_parity(f"conv_lstm::{request.node.name}", mine, theirs)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        (
            "ConvLSTM2D",
            {
                "filters": 2,
                "kernel_size": (3, 2),
                "strides": (2, 1),
                "padding": "same",
            },
        ),
        ("ConvLSTM1D", {"filters": 3, "kernel_size": 3, "dilation_rate": 2}),
        pytest.param(
            "ConvLSTM2D",
            {"filters": 3, "kernel_size": 3},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_channels_first_matches_keras(name, kwargs, request):
    frame = FRAMES[name]
    x = _inputs(name, frame=(frame[-1], *frame[:-1]))
    mine, theirs = _run_both(
        name,
        dict(
            kwargs,
            data_format="channels_first",
            return_sequences=True,
            return_state=True,
        ),
        x,
    )
    assert_parity(f"conv_lstm::{request.node.name}", mine, theirs)


@pytest.mark.parametrize(
    "go_backwards,mask_kind",
    [
        (False, "holes"),
        (True, "holes"),
        pytest.param(False, "right", marks=pytest.mark.slow),
        pytest.param(True, "right", marks=pytest.mark.slow),
    ],
)
def test_masks_and_go_backwards_match_keras(go_backwards, mask_kind, request):
    kwargs = {
        "filters": 3,
        "kernel_size": 2,
        "padding": "same",
        "return_sequences": True,
        "return_state": True,
        "go_backwards": go_backwards,
    }
    mine, theirs = _run_both(
        "ConvLSTM2D", kwargs, _inputs("ConvLSTM2D"), mask=_mask(mask_kind)
    )
    assert_parity(f"conv_lstm::{request.node.name}", mine, theirs)


@pytest.mark.parametrize(
    "mask_kind", ["holes", pytest.param("none", marks=pytest.mark.slow)]
)
def test_initial_state_matches_keras(mask_kind, request):
    kwargs = {
        "filters": 3,
        "kernel_size": 3,
        "strides": 2,
        "return_sequences": True,
        "return_state": True,
    }
    rng = np.random.default_rng(5)
    state = [
        rng.standard_normal((B, 2, 2, 3)).astype("float32") for _ in range(2)
    ]
    mine, theirs = _run_both(
        "ConvLSTM2D",
        kwargs,
        _inputs("ConvLSTM2D"),
        mask=_mask(mask_kind),
        initial_state=state,
    )
    assert_parity(f"conv_lstm::{request.node.name}", mine, theirs)


def test_keras_scan_path_matches(request):
    # One case through Keras' own scan (slow to compile, no masks).
    kwargs = {
        "filters": 2,
        "kernel_size": 3,
        "padding": "same",
        "return_sequences": True,
        "return_state": True,
        "go_backwards": True,
    }
    mine, theirs = _run_both(
        "ConvLSTM2D", kwargs, _inputs("ConvLSTM2D"), keras_unroll=False
    )
    assert_parity(f"conv_lstm::{request.node.name}", mine, theirs)


@pytest.mark.parametrize(
    "rates",
    [
        (0.3, 0.4),
        pytest.param((0.3, 0.0), marks=pytest.mark.slow),
        pytest.param((0.0, 0.4), marks=pytest.mark.slow),
    ],
)
def test_dropout_matches_keras_with_the_same_masks(rates, key, request):
    # Keras draws four masks per sequence (one per gate) for the inputs and
    # four for h; hand it jaxrnn's, drawn from the key the layer is given.
    dropout, recurrent_dropout = rates
    kwargs = {
        "filters": 3,
        "kernel_size": 3,
        "padding": "same",
        "return_sequences": True,
        "return_state": True,
        "dropout": dropout,
        "recurrent_dropout": recurrent_dropout,
    }
    x = _inputs("ConvLSTM2D")
    keras_layer = keras.layers.ConvLSTM2D(unroll=True, **_FAST_INIT, **kwargs)
    ours = ConvLSTM2D(**kwargs)
    keras_layer(x)
    randomize_keras_weights(keras_layer, 2)
    params = params_from_keras(
        param_shapes_for(ours, x.shape), keras_layer.get_weights()
    )
    bound = dataclasses.replace(ours.cell, spatial_shape=x.shape[2:4])

    @jax.jit
    def run(params, x, key):
        # The layer hands `key` to the cell's dropout_masks unchanged.
        masks = bound.dropout_masks(key, (B,), x.shape[2:], training=True)
        return (
            ours(params, x, key=key, training=True),
            ours(params, x),
            masks,
        )

    mine, plain, masks = run(params, jnp.asarray(x), key)
    cell = keras_layer.cell
    if masks.inputs is not None:
        cell._dropout_mask = list(np.split(np.asarray(masks.inputs), 4, -1))
    if masks.recurrent is not None:
        cell._recurrent_dropout_mask = list(
            np.split(np.asarray(masks.recurrent), 4, -1)
        )
    theirs = keras_layer(x, training=True)
    assert_parity(f"conv_lstm::{request.node.name}", mine, theirs)
    assert not np.allclose(mine[0], plain[0])


def test_stateful_chunks_match_one_call():
    layer = ConvLSTM2D(
        3, 3, padding="same", return_sequences=True, stateful=True
    )
    x = jnp.asarray(_inputs("ConvLSTM2D"))
    params = random_params_for(layer, x.shape)
    run = jax.jit(lambda x, state: layer(params, x, initial_state=state))
    zeros = [jnp.zeros((B, 6, 5, 3))] * 2
    whole, _h, c = run(x, zeros)
    first, *state = run(x[:, :2], zeros)
    second, _h2, c2 = run(x[:, 2:], state)
    np.testing.assert_allclose(
        jnp.concatenate([first, second], 1), whole, atol=1e-6
    )
    np.testing.assert_allclose(c2, c, atol=1e-6)


@pytest.mark.parametrize(
    "make,input_shape",
    [
        (lambda m: m.ConvLSTM2D(4, 3, **_FAST_INIT), (None, 10, 16, 12, 3)),
        (
            lambda m: m.ConvLSTM2D(
                4,
                (3, 5),
                strides=(2, 3),
                padding="same",
                return_sequences=True,
                return_state=True,
                **_FAST_INIT,
            ),
            (None, 10, 17, 12, 3),
        ),
        (
            lambda m: m.ConvLSTM2D(
                2, 3, dilation_rate=2, use_bias=False, **_FAST_INIT
            ),
            (None, None, 9, 9, 1),
        ),
        (
            lambda m: m.ConvLSTM1D(
                5, 4, strides=3, return_state=True, **_FAST_INIT
            ),
            (None, 8, 20, 2),
        ),
        (
            lambda m: m.ConvLSTM3D(2, 2, return_sequences=True, **_FAST_INIT),
            (None, 3, 4, 5, 6, 1),
        ),
        (
            lambda m: m.ConvLSTM2D(
                3,
                3,
                data_format="channels_first",
                return_sequences=True,
                **_FAST_INIT,
            ),
            (None, 5, 2, 9, 8),
        ),
    ],
)
def test_output_shape_and_param_count_match_keras(make, input_shape):
    keras_layer, ours = make(keras.layers), make(types.SimpleNamespace(**OURS))
    keras_layer.build(input_shape)
    assert ours.param_count(input_shape) == keras_layer.count_params()
    want = keras_layer.compute_output_shape(input_shape)
    got = ours.output_shape(input_shape)
    if isinstance(got, list):
        assert got == [tuple(s) for s in want]
    else:
        assert got == tuple(want)


def test_output_shape_time_major_unbatched_and_unknown_sizes():
    layer = ConvLSTM2D(4, 3, return_sequences=True, time_major=True)
    assert layer.output_shape((10, None, 8, 7, 2)) == (10, None, 6, 5, 4)
    assert ConvLSTM2D(4, 3).output_shape((10, 8, 7, 2)) == (6, 5, 4)
    assert ConvLSTM2D(4, 3, strides=2).output_shape(
        (None, None, None, 9, 2)
    ) == (None, None, 4, 4)


def test_time_major_and_unbatched_equal_batch_major():
    layer = ConvLSTM2D(3, 3, return_sequences=True, return_state=True)
    time_major = ConvLSTM2D(
        3, 3, return_sequences=True, return_state=True, time_major=True
    )
    x = jnp.asarray(_inputs("ConvLSTM2D"))
    mask = jnp.asarray(_mask("holes"))
    params = random_params_for(layer, x.shape)

    @jax.jit
    def run(x, mask):
        return (
            layer(params, x, mask=mask),
            time_major(params, x.swapaxes(0, 1), mask=mask.T),
            layer(params, x[1], mask=mask[1]),
        )

    (ys, _h, c), (ys_t, _, c_t), (ys_1, _, c_1) = run(x, mask)
    np.testing.assert_allclose(ys, ys_t.swapaxes(0, 1), atol=1e-6)
    np.testing.assert_allclose(c, c_t, atol=1e-6)
    np.testing.assert_allclose(ys_1, ys[1], atol=1e-6)
    np.testing.assert_allclose(c_1, c[1], atol=1e-6)


def test_layers_are_hashable_static_arguments():
    layer = ConvLSTM2D(3, (3, 3), padding="SAME")
    same = ConvLSTM2D(3, 3, padding="same")
    assert layer == same and hash(layer) == hash(same)
    x = jnp.asarray(_inputs("ConvLSTM2D"))
    params = random_params_for(layer, x.shape)
    apply = jax.jit(lambda layer, p, x: layer(p, x), static_argnums=0)
    np.testing.assert_array_equal(
        apply(layer, params, x), apply(same, params, x)
    )
    assert apply._cache_size() == 1


@pytest.mark.parametrize(
    "bad,error,match",
    [
        ({"filters": 0, "kernel_size": 3}, ValueError, "filters"),
        ({"filters": 2, "kernel_size": (3, 3, 3)}, ValueError, "kernel_size"),
        (
            {"filters": 2, "kernel_size": 3, "padding": "causal"},
            ValueError,
            "padding",
        ),
        (
            {"filters": 2, "kernel_size": 3, "data_format": "NHWC"},
            ValueError,
            "data_format",
        ),
        (
            {"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
            ValueError,
            "strides",
        ),
        (
            {"filters": 2, "kernel_size": 3, "dropout": 1.0},
            ValueError,
            "dropout",
        ),
        (
            {"filters": 2, "kernel_size": 3, "return_state": 1},
            TypeError,
            "return_state",
        ),
    ],
)
def test_bad_layer_arguments(bad, error, match):
    with pytest.raises(error, match=match):
        ConvLSTM2D(**bad)


@pytest.mark.parametrize(
    "input_shape,match",
    [
        ((5, 8, 8), "rank"),  # one spatial axis short
        ((None, 5, 8, 8, 8, 1), "rank"),
        ((None, 5, 8, 8, None), "channel count"),
    ],
)
def test_bad_input_shapes(input_shape, match, key):
    with pytest.raises(ValueError, match=match):
        ConvLSTM2D(2, 3).init(key, input_shape)


def test_inputs_of_the_wrong_rank():
    layer = ConvLSTM2D(2, 3)
    params = random_params_for(layer, (None, 4, 6, 6, 1))
    with pytest.raises(ValueError, match="`inputs` must be"):
        layer(params, jnp.ones((4, 6, 1)))


def test_channel_count_mismatch_at_call():
    layer = ConvLSTM2D(2, 3)
    params = random_params_for(layer, (None, 4, 6, 6, 2))
    with pytest.raises(ValueError, match="2 input channels.*3"):
        layer(params, jnp.ones((1, 4, 6, 6, 3)))


def test_frames_too_small(key):
    layer = ConvLSTM2D(2, 3, dilation_rate=2)
    with pytest.raises(ValueError, match="too small"):
        layer.init(key, (None, 4, 4, 6, 1))


def test_bad_initial_state():
    layer = ConvLSTM2D(2, 3)
    params = random_params_for(layer, (None, 4, 6, 6, 1))
    x = jnp.ones((1, 4, 6, 6, 1))
    with pytest.raises(ValueError, match="initial_state"):
        layer(params, x, initial_state=[jnp.zeros((1, 4, 4, 2))])
    with pytest.raises(ValueError, match="initial_carry"):
        layer(params, x, initial_state=[jnp.zeros((1, 6, 6, 2))] * 2)


def test_stateful_layer_refuses_unbatched_frames(key):
    layer = ConvLSTM2D(2, 3, stateful=True)
    params = random_params_for(layer, (None, 4, 6, 6, 1))
    with pytest.raises(
        ValueError,
        match=r"A stateful ConvLSTM2D reads batches "
        r"\(B, T, \*S, C\).*x\[:, None\]",
    ):
        layer(params, jnp.ones((4, 6, 6, 1)))


def test_integer_frames_are_cast_as_keras_does():
    """Keras casts integer inputs to the compute dtype (as the other
    recurrent layers here do)."""
    layer = ConvLSTM1D(2, 3, padding="same")
    frames = np.random.default_rng(0).integers(0, 4, (2, 3, 5, 1))
    params = layer.init(jax.random.key(0), frames.shape)
    keras_layer = keras.layers.ConvLSTM1D(2, 3, padding="same")
    keras_layer.build(frames.shape)
    keras_layer.set_weights(
        [np.asarray(params[k]) for k in ("kernel", "recurrent_kernel", "bias")]
    )
    ours = layer(params, jnp.asarray(frames))
    assert_parity("ConvLSTM1D int frames", ours, keras_layer(frames))
    np.testing.assert_array_equal(
        ours, layer(params, jnp.asarray(frames, jnp.float32))
    )
