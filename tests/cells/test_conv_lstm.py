"""ConvLSTMCell and its 1-D/2-D/3-D forms: params, carry, step, errors.

Parity with Keras is in tests/layers/test_conv_lstm.py; here the cell on its
own and under `jaxrnn.rnn`. Params are drawn with NumPy (eager
initialisation compiles per shape, slowly) except where `init` is the test.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import rnn
from jaxrnn.cells.conv_lstm import (
    ConvLSTM1DCell,
    ConvLSTM2DCell,
    ConvLSTM3DCell,
    ConvLSTMCell,
)

B, T = 2, 5


def _params(cell, input_dim, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {
        name: jnp.asarray(0.5 * rng.standard_normal(shape), dtype)
        for name, shape in cell.param_shapes(input_dim).items()
    }


def _frames(shape, seed=1, dtype=np.float32):
    return jnp.asarray(
        np.random.default_rng(seed).standard_normal(shape), dtype
    )


# --- Params -----------------------------------------------------------------


@pytest.mark.parametrize(
    "cell,input_dim,kernel,recurrent",
    [
        (ConvLSTM1DCell(3, 4), 2, (4, 2, 12), (4, 3, 12)),
        (ConvLSTM2DCell(3, (2, 5)), 1, (2, 5, 1, 12), (2, 5, 3, 12)),
        (ConvLSTM3DCell(2, 3), (4, 5, 6, 7), (3, 3, 3, 7, 8), (3, 3, 3, 2, 8)),
        (
            ConvLSTM2DCell(3, 3, data_format="channels_first"),
            (2, 9, 9),
            (3, 3, 2, 12),
            (3, 3, 3, 12),
        ),
    ],
)
def test_init_has_keras_names_and_shapes(cell, input_dim, kernel, recurrent):
    shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), input_dim))
    assert {k: v.shape for k, v in shapes.items()} == {
        "kernel": kernel,
        "recurrent_kernel": recurrent,
        "bias": (recurrent[-1],),
    }


def test_generic_cell_has_the_fixed_rank_ones_shapes():
    generic, fixed = ConvLSTMCell(2, 4, 3), ConvLSTM2DCell(4, 3)
    assert generic.param_shapes(2) == fixed.param_shapes(2)
    assert generic.input_ndim == fixed.input_ndim == 3 and fixed.rank == 2
    assert "rank" not in repr(fixed)


def test_hyperparameters_are_normalised_and_hashable():
    cell = ConvLSTM2DCell(4, 3, padding="SAME", spatial_shape=[8, 6])
    assert cell.kernel_size == (3, 3) and cell.strides == (1, 1)
    assert cell.padding == "same" and cell.data_format == "channels_last"
    assert cell.spatial_shape == (8, 6)
    assert hash(cell) == hash(
        ConvLSTM2DCell(4, (3, 3), padding="same", spatial_shape=(8, 6))
    )


@pytest.mark.parametrize(
    "unit_forget_bias,bias_initializer,expected",
    [
        (True, "zeros", [0, 0, 1, 1, 0, 0, 0, 0]),
        (False, "zeros", [0] * 8),
        (True, "ones", [1] * 8),
    ],
)
def test_unit_forget_bias(key, unit_forget_bias, bias_initializer, expected):
    cell = ConvLSTM1DCell(
        2,
        1,
        unit_forget_bias=unit_forget_bias,
        bias_initializer=bias_initializer,
        recurrent_initializer="zeros",
    )
    np.testing.assert_array_equal(cell.init(key, 1)["bias"], expected)


def test_use_bias_false_has_no_bias(key):
    cell = ConvLSTM1DCell(2, 1, use_bias=False, recurrent_initializer="zeros")
    assert sorted(cell.init(key, 3)) == ["kernel", "recurrent_kernel"]


def test_param_dtype(key):
    cell = ConvLSTM1DCell(
        2, 1, param_dtype="bfloat16", recurrent_initializer="zeros"
    )
    dtypes = {p.dtype for p in cell.init(key, 3).values()}
    assert dtypes == {jnp.dtype(jnp.bfloat16)}


# --- Shapes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell,spatial,expected",
    [
        (ConvLSTM2DCell(4, 3), (9, 8), (7, 6)),
        (ConvLSTM2DCell(4, 3, padding="same"), (9, 8), (9, 8)),
        (ConvLSTM2DCell(4, 3, strides=2), (9, 8), (4, 3)),
        (ConvLSTM2DCell(4, 3, strides=(2, 3), padding="same"), (9, 8), (5, 3)),
        (ConvLSTM2DCell(4, 3, dilation_rate=(2, 1)), (9, 8), (5, 6)),
        (ConvLSTM1DCell(4, 2, padding="same", dilation_rate=3), (7,), (7,)),
        (ConvLSTM3DCell(4, (1, 2, 3)), (2, 3, 4), (2, 2, 2)),
    ],
)
def test_output_spatial_shape(cell, spatial, expected):
    assert cell.output_spatial_shape(spatial) == expected
    carry = dataclasses.replace(cell, spatial_shape=spatial).initial_carry(
        (B,)
    )
    assert [c.shape for c in carry] == [(B, *expected, 4)] * 2


def test_channels_first_carry_and_output():
    cell = ConvLSTM2DCell(
        3, 3, data_format="channels_first", spatial_shape=(7, 6)
    )
    h, c = cell.initial_carry((B,))
    assert h.shape == c.shape == (B, 3, 5, 4)
    params = _params(cell, 2)
    (h, c), y = cell(params, (h, c), _frames((B, 2, 7, 6)))
    assert y.shape == (B, 3, 5, 4)


def test_initial_carry_needs_the_spatial_shape():
    with pytest.raises(ValueError, match="spatial_shape"):
        ConvLSTM2DCell(4, 3).initial_carry((B,))


# --- The step and rnn ---------------------------------------------------------


def test_step_matches_a_reference_convolution():
    # One step written out with per-gate convolutions, as Keras does.
    cell = ConvLSTM2DCell(
        2, 3, padding="same", strides=2, spatial_shape=(7, 6)
    )
    params = _params(cell, 3)
    x = _frames((B, 7, 6, 3))
    h0 = _frames((B, 4, 3, 2), seed=2)
    c0 = _frames((B, 4, 3, 2), seed=3)
    (h, c), y = jax.jit(cell)(params, (h0, c0), x)

    def conv(v, w, strides, padding):
        return jax.lax.conv_general_dilated(
            v,
            w,
            strides,
            padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision="highest",
        )

    z = [
        conv(x, k, (2, 2), "SAME") + b + conv(h0, r, (1, 1), "SAME")
        for k, r, b in zip(
            jnp.split(params["kernel"], 4, -1),
            jnp.split(params["recurrent_kernel"], 4, -1),
            jnp.split(params["bias"], 4),
        )
    ]
    i, f, o = (jax.nn.sigmoid(z[g]) for g in (0, 1, 3))
    want_c = f * c0 + i * jnp.tanh(z[2])
    np.testing.assert_allclose(c, want_c, atol=1e-5)
    np.testing.assert_allclose(h, o * jnp.tanh(want_c), atol=1e-5)
    np.testing.assert_array_equal(h, y)


def test_rnn_equals_stepping_the_cell_by_hand():
    # rnn's hoisted path (one input convolution per chunk of steps) against
    # the plain call, step by step.
    cell = ConvLSTM1DCell(3, 3, spatial_shape=(8,))
    params = _params(cell, 2)
    xs = _frames((B, T, 8, 2))

    @jax.jit
    def both(xs):
        ys, carry = rnn(cell, params, xs)
        step_carry, step_ys = cell.initial_carry((B,)), []
        for t in range(T):
            step_carry, y = cell(params, step_carry, xs[:, t])
            step_ys.append(y)
        return ys, carry, jnp.stack(step_ys, 1), step_carry

    ys, carry, step_ys, step_carry = both(xs)
    np.testing.assert_allclose(ys, step_ys, atol=1e-6)
    for a, b in zip(carry, step_carry):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_batched_equals_vmap_of_unbatched():
    cell = ConvLSTM2DCell(2, 2, strides=(1, 2), spatial_shape=(5, 6))
    params = _params(cell, 2)
    xs = _frames((3, 4, 5, 6, 2))
    lengths = jnp.array([4, 2, 3])

    @jax.jit
    def both(xs, lengths):
        batched = rnn(cell, params, xs, seq_lengths=lengths, go_backwards=True)
        mapped = jax.vmap(
            lambda x, n: rnn(cell, params, x, seq_lengths=n, go_backwards=True)
        )(xs, lengths)
        return batched, mapped

    batched, mapped = both(xs, lengths)
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(mapped)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_masked_steps_equal_truncation():
    cell = ConvLSTM1DCell(2, 3, padding="same", spatial_shape=(6,))
    params = _params(cell, 1)
    xs = _frames((1, T, 6, 1)).at[:, 3:].set(jnp.nan)  # never read

    @jax.jit
    def both(xs):
        masked = rnn(
            cell,
            params,
            xs,
            seq_lengths=jnp.array([3]),
            return_sequences=False,
        )
        return masked, rnn(cell, params, xs[:, :3], return_sequences=False)

    (last, carry), (want_last, want_carry) = both(xs)
    np.testing.assert_allclose(last, want_last, atol=1e-6)
    np.testing.assert_allclose(carry[1], want_carry[1], atol=1e-6)


@pytest.mark.parametrize(
    "config",
    [
        {
            "strides": (1, 1),
            "padding": "SAME",
            "dilation": (1, 1),
            "groups": 1,
        },
        {
            "strides": (2, 1),
            "padding": "VALID",
            "dilation": (1, 1),
            "groups": 1,
        },
        {
            "strides": (1, 1),
            "padding": "SAME",
            "dilation": (2, 1),
            "groups": 4,
        },
        {
            "strides": (2, 2),
            "padding": "SAME",
            "dilation": (1, 1),
            "groups": 4,
        },
    ],
)
def test_cpu_convolution_gradient_equals_lax(config):
    # On CPU the kernel's tangent is patches @ d_kernel (XLA:CPU's kernel-
    # gradient convolution is slow inside lax.scan); same numbers as lax.
    from jaxrnn.cells._convolution import (
        _conv_as_matmul,
        _conv_general,
        _conv_with_matmul_gradient,
    )

    config = dict(config, precision="highest")
    frames = _frames((2, 7, 6, 4 * config["groups"] // 2))
    kernel = _frames((3, 2, 2, 8), seed=2)
    cotangent = jax.eval_shape(lambda: _conv_general(frames, kernel, **config))
    cotangent = _frames(cotangent.shape, seed=3)

    def loss(conv):
        return jax.jit(
            jax.grad(
                lambda f, k: jnp.sum(conv(f, k, **config) * cotangent), (0, 1)
            )
        )

    want = loss(_conv_general)(frames, kernel)
    fast = _conv_with_matmul_gradient(**config)
    for got in (
        loss(lambda f, k, **_: fast(f, k))(frames, kernel),
        loss(_conv_as_matmul)(frames, kernel),
    ):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_gradients_check_in_float64():
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        cell = ConvLSTM2DCell(2, 2, padding="same", spatial_shape=(3, 3))
        params = _params(cell, 1, dtype=np.float64)
        x = _frames((2, 3, 3, 3, 1), dtype=np.float64)
        mask = jnp.array([[1, 1, 0], [0, 1, 1]], bool)
        carry = tuple(
            c.astype(jnp.float64) + 0.1 for c in cell.initial_carry((2,))
        )

        def f(params, x):
            return rnn(cell, params, x, mask=mask, initial_carry=carry)

        check_grads(f, (params, x), order=1, modes=["fwd", "rev"])


def test_compute_dtype_and_precision():
    cell = ConvLSTM1DCell(
        2, 3, spatial_shape=(6,), dtype="bfloat16", precision="highest"
    )
    params = _params(cell, 2)
    carry = cell.initial_carry((B,))
    assert carry[0].dtype == jnp.bfloat16
    (h, c), y = jax.jit(cell)(params, carry, _frames((B, 6, 2)))
    assert h.dtype == c.dtype == y.dtype == jnp.bfloat16
    promoted = dataclasses.replace(cell, dtype=None)
    _, y32 = jax.jit(promoted)(
        params,
        promoted.initial_carry((B,)),
        _frames((B, 6, 2), dtype=jnp.bfloat16),
    )
    assert y32.dtype == jnp.float32


# --- Dropout ------------------------------------------------------------------


def test_dropout_masks_one_per_gate_with_the_rate(key):
    cell = ConvLSTM2DCell(
        8, 3, strides=2, dropout=0.25, recurrent_dropout=0.75
    )
    masks = jax.jit(
        lambda key: cell.dropout_masks(key, (64,), (9, 8, 4), training=True)
    )(key)
    assert masks.inputs.shape == (64, 9, 8, 16)  # four gates x C
    assert masks.recurrent.shape == (64, 4, 3, 32)  # four gates x F
    assert set(np.unique(masks.inputs)) == {0.0, np.float32(1 / 0.75)}
    np.testing.assert_allclose((masks.inputs == 0).mean(), 0.25, atol=0.02)
    np.testing.assert_allclose((masks.recurrent == 0).mean(), 0.75, atol=0.02)
    gates = np.split(np.asarray(masks.inputs), 4, -1)
    assert not np.array_equal(gates[0], gates[1])
    assert cell.dropout_masks(key, (64,), (9, 8, 4), training=False) is None


def test_dropout_needs_a_key_in_training():
    cell = ConvLSTM1DCell(2, 3, dropout=0.5, spatial_shape=(6,))
    params = _params(cell, 2)
    with pytest.raises(ValueError, match="key"):
        cell(
            params, cell.initial_carry((B,)), _frames((B, 6, 2)), training=True
        )


# --- Errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"filters": 0, "kernel_size": 3}, ValueError, "filters"),
        ({"filters": 2.0, "kernel_size": 3}, TypeError, "filters"),
        ({"filters": 2, "kernel_size": (3, 3, 3)}, ValueError, "kernel_size"),
        ({"filters": 2, "kernel_size": 0}, ValueError, "kernel_size"),
        (
            {"filters": 2, "kernel_size": 3, "strides": (1, 0)},
            ValueError,
            "strides",
        ),
        (
            {"filters": 2, "kernel_size": 3, "padding": "full"},
            ValueError,
            "padding",
        ),
        (
            {"filters": 2, "kernel_size": 3, "data_format": "NCHW"},
            ValueError,
            "data_format",
        ),
        (
            {"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2},
            ValueError,
            "dilation_rate",
        ),
        (
            {"filters": 2, "kernel_size": 3, "activation": "nope"},
            ValueError,
            "activation",
        ),
        (
            {"filters": 2, "kernel_size": 3, "recurrent_dropout": 1.0},
            ValueError,
            "recurrent_dropout",
        ),
        (
            {"filters": 2, "kernel_size": 3, "spatial_shape": (8,)},
            ValueError,
            "spatial_shape",
        ),
        (
            {"filters": 2, "kernel_size": 3, "unit_forget_bias": 1},
            TypeError,
            "unit_forget_bias",
        ),
    ],
)
def test_bad_hyperparameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        ConvLSTM2DCell(**kwargs)


def test_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        ConvLSTMCell(4, 2, 3)


@pytest.mark.parametrize(
    "x_shape,match",
    [
        ((6, 6), "x"),  # no channel axis
        ((B, 6, 6, 3), "3 input channels|input channels"),
        ((B, 7, 6, 2), "spatial_shape"),
    ],
)
def test_bad_frames(x_shape, match):
    cell = ConvLSTM2DCell(2, 3, spatial_shape=(6, 6))
    params = _params(cell, 2)
    with pytest.raises(ValueError, match=match):
        cell(params, cell.initial_carry((B,)), jnp.ones(x_shape))


def test_frames_too_small():
    with pytest.raises(ValueError, match="too small"):
        ConvLSTM2DCell(2, 3, dilation_rate=2, spatial_shape=(4, 9))
    cell = ConvLSTM2DCell(2, 3)
    carry = (jnp.zeros((B, 1, 1, 2)),) * 2
    with pytest.raises(ValueError, match="too small"):
        cell(_params(cell, 2), carry, jnp.ones((B, 2, 3, 2)))


def test_bad_carry():
    cell = ConvLSTM2DCell(2, 3, spatial_shape=(6, 6))
    params = _params(cell, 2)
    carry = cell.initial_carry((B,))
    with pytest.raises(ValueError, match="carry"):
        cell(params, carry[0], jnp.ones((B, 6, 6, 2)))
    with pytest.raises(ValueError, match="carry"):
        cell(params, (carry[0][:, :3], carry[1]), jnp.ones((B, 6, 6, 2)))


def test_rnn_rejects_wrong_ranks_and_channels():
    cell = ConvLSTM2DCell(2, 3, spatial_shape=(6, 6))
    params = _params(cell, 2)
    with pytest.raises(ValueError, match="inputs"):
        rnn(cell, params, jnp.ones((T, 6, 2)))
    with pytest.raises(ValueError, match="input channels"):
        rnn(cell, params, jnp.ones((B, T, 6, 6, 1)))


def test_bad_params():
    cell = ConvLSTM2DCell(2, 3)
    params = _params(cell, 2)
    with pytest.raises(ValueError, match="bias"):
        cell.check_params({k: v for k, v in params.items() if k != "bias"}, 2)
    with pytest.raises(ValueError, match="recurrent_kernel"):
        cell.check_params(
            dict(params, recurrent_kernel=jnp.ones((3, 3, 2, 4))), 2
        )
