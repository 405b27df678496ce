"""GriffinBlock: streaming, masks, document restarts, both scans, errors
(default run), and recurrentgemma's RecurrentBlock on the same weights
(slow; CI's thorough pass installs recurrentgemma without its
dependencies): whole sequences with and without document boundaries,
token-by-token decoding from its cache, gradients, and the converters."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras_helpers import assert_parity, perturb
from properties import THOROUGH

from jaxrnn.interop import from_recurrentgemma, to_recurrentgemma
from jaxrnn.layers import GriffinBlock

B, T, D, NH = 3, 11, 8, 2


def _case(seed=0, **kwargs):
    block = GriffinBlock(D, num_heads=NH, **kwargs)
    params = perturb(block.init(jax.random.key(seed), (None, None, D)))
    xs = jax.random.normal(jax.random.key(seed + 1), (B, T, D))
    return block, params, xs


def test_parallel_equals_sequential_with_grads():
    block, params, xs = _case()
    sequential = GriffinBlock(D, num_heads=NH, parallel=False)
    positions = jnp.array([[0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2]] * B)

    def loss(block, params):
        return jnp.sum(block(params, xs, segment_pos=positions) ** 2)

    assert_parity(
        "Griffin parallel",
        jax.tree.leaves(jax.value_and_grad(loss, 1)(block, params)),
        jax.tree.leaves(jax.value_and_grad(loss, 1)(sequential, params)),
        atol=1e-4,
    )


@pytest.mark.parametrize("split", [1, 2, 5])
def test_a_stream_in_chunks_equals_one_run(split):
    """The state carries the convolution's last K - 1 inputs and h."""
    block, params, xs = _case(return_state=True)
    whole, conv_state, h = block(params, xs)
    first, *state = block(params, xs[:, :split])
    second, *state = block(params, xs[:, split:], initial_state=tuple(state))
    assert_parity(
        "Griffin stream",
        (jnp.concatenate([first, second], 1), *state),
        (whole, conv_state, h),
    )


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_equals_shorter_sequences(side):
    """Each row's valid outputs and its final state are those of running
    the row alone, truncated; padded outputs are zeros."""
    block, params, xs = _case(return_state=True)
    lengths = [T, 6, 2]
    mask = jnp.arange(T)[None] < jnp.array(lengths)[:, None]
    if side == "left":
        mask = mask[:, ::-1]
    outputs, conv_state, h = block(params, xs, mask=mask)
    for row, length in enumerate(lengths):
        valid = slice(0, length) if side == "right" else slice(T - length, T)
        want, want_conv, want_h = block(params, xs[row : row + 1, valid])
        assert_parity(
            "Griffin masked",
            (outputs[row, valid], conv_state[row], h[row]),
            (want[0], want_conv[0], want_h[0]),
        )
        np.testing.assert_array_equal(outputs[row][~mask[row]], 0.0)


def test_a_document_start_forgets_what_came_before():
    """From a restart on, outputs do not depend on earlier inputs."""
    block, params, xs = _case()
    positions = jnp.broadcast_to(
        jnp.concatenate([jnp.arange(5), jnp.arange(T - 5)]), (B, T)
    )
    changed = xs.at[:, :5].set(7.0)
    got = block(params, changed, segment_pos=positions)
    want = block(params, xs, segment_pos=positions)
    assert_parity("Griffin restart", got[:, 5:], want[:, 5:], atol=0)
    assert float(jnp.abs(got[:, :5] - want[:, :5]).max()) > 1e-3


def test_jit_vmap_and_shapes():
    block, params, xs = _case(lru_width=12)
    want = block(params, xs)
    assert want.shape == (B, T, D)
    got = jax.jit(block)(params, xs)
    assert_parity("Griffin jit", got, want)
    per_row = jax.vmap(lambda x: block(params, x[None])[0])(xs)
    assert_parity("Griffin vmap", per_row, want)
    assert block.output_shape((None, T, D)) == (None, T, D)
    stateful = GriffinBlock(D, num_heads=NH, lru_width=12, return_state=True)
    assert stateful.output_shape((None, None, D)) == [
        (None, None, D),
        (None, 3, 12),
        (None, 12),
    ]
    # linear x, y (D*12+12 each), out (12*D+D), conv (4*12+12), RG-LRU
    # (12 + 2 * (2 * 6 * 6 + 12)).
    assert block.param_count((None, T, D)) == 2 * 108 + 104 + 60 + 12 + 168


def test_bfloat16_params_and_compute():
    block, params, xs = _case()
    want = block(params, xs)
    fast = GriffinBlock(D, num_heads=NH, dtype="bfloat16")
    got = fast(params, xs)
    assert got.dtype == jnp.bfloat16
    assert float(jnp.abs(got.astype(jnp.float32) - want).max()) < 0.1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda b, p, x: b(p, x[0]),
            ValueError,
            r"\(B, T, D\).*x\[None\]|inputs\[None\]",
        ),
        (lambda b, p, x: b(p, x[..., :5]), ValueError, "linear_x"),
        (lambda b, p, x: b(p, x.astype(jnp.int32)), TypeError, "floating"),
        (lambda b, p, x: b(p, x, mask=jnp.ones((B, T))), TypeError, "bool"),
        (
            lambda b, p, x: b(p, x, mask=jnp.ones((B,), bool)),
            ValueError,
            r"\(B, T\)",
        ),
        (
            lambda b, p, x: b(p, x, segment_pos=jnp.zeros((B, T))),
            TypeError,
            "integer",
        ),
        (
            lambda b, p, x: b(p, x, initial_state=jnp.zeros((B, D))),
            TypeError,
            "conv_state, h",
        ),
        (
            lambda b, p, x: b(
                p, x, initial_state=(jnp.zeros((B, 2, D)), jnp.zeros((B, D)))
            ),
            ValueError,
            "initial_state",
        ),
        (lambda b, p, x: b(x), TypeError, "GriffinBlock"),
    ],
)
def test_bad_calls_are_named(call, error, match):
    block, params, xs = _case()
    with pytest.raises(error, match=match):
        call(block, params, xs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=0), "width"),
        (dict(width=8, num_heads=3), "num_heads"),
        (dict(width=8, conv1d_temporal_width=0), "conv1d_temporal_width"),
        (dict(width=8, dtype="int8"), "floating dtype"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        GriffinBlock(**kwargs)


# -- recurrentgemma --------------------------------------------------------


def _module(block, params):
    if importlib.util.find_spec("recurrentgemma") is None and not THOROUGH:
        pytest.skip("recurrentgemma is installed by CI's thorough pass")
    return to_recurrentgemma(block, params)


@pytest.mark.slow
@pytest.mark.parametrize("lru_width", [None, 12])
def test_matches_recurrentgemma(lru_width):
    """Outputs and gradients (params and inputs) with a document boundary
    in the sequence, the cache after it, then token-by-token decoding from
    that cache against one streamed call."""
    block, params, xs = _case(lru_width=lru_width, return_state=True)
    module, variables = _module(block, params)
    positions = jnp.array([[0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6]] * B)
    positions = positions.at[1].set(jnp.arange(T))

    def theirs(variables, xs):
        ys, cache = module.apply(variables, xs, positions)
        return jnp.sum(ys**2), (ys, cache)

    def ours(params, xs):
        ys, conv_state, h = block(params, xs, segment_pos=positions)
        return jnp.sum(ys**2), (ys, (conv_state, h))

    # recurrentgemma's convolution multiplies floats by an int mask.
    with jax.numpy_dtype_promotion("standard"):
        (_, (want, cache)), want_grads = jax.value_and_grad(
            theirs, (0, 1), True
        )(variables, xs)
    (_, (got, state)), got_grads = jax.value_and_grad(ours, (0, 1), True)(
        params, xs
    )
    assert_parity("Griffin recurrentgemma", got, want)
    assert_parity(
        "Griffin recurrentgemma cache",
        state,
        (cache.conv1d_state, cache.rg_lru_state),
    )
    _, theirs_as_ours = from_recurrentgemma(module, want_grads[0])
    assert_parity(
        "Griffin recurrentgemma grad",
        jax.tree.leaves(got_grads[0]) + [got_grads[1]],
        jax.tree.leaves(theirs_as_ours) + [want_grads[1]],
        atol=5e-5,
    )
    more = jax.random.normal(jax.random.key(9), (B, 4, D))
    decoded = []
    for t in range(4):
        with jax.numpy_dtype_promotion("standard"):
            y, cache = module.apply(
                variables, more[:, t : t + 1], positions[:, -1:] + 1 + t, cache
            )
        decoded.append(y)
    streamed, *_ = block(params, more, initial_state=state)
    assert_parity(
        "Griffin recurrentgemma decode",
        streamed,
        jnp.concatenate(decoded, 1),
    )


@pytest.mark.slow
def test_converters_round_trip_and_refuse():
    block, params, _ = _case(lru_width=12)
    module, variables = _module(block, params)
    back_block, back = from_recurrentgemma(module, variables)
    assert back_block == block
    assert_parity(
        "Griffin converters",
        jax.tree.leaves(back),
        jax.tree.leaves(params),
        atol=0,
    )
    tree = dict(variables["params"], conv_1d={"kernel": 0, "bias": 0})
    with pytest.raises(ValueError, match="conv_1d must hold w and b"):
        from_recurrentgemma(module, {"params": tree})
    with pytest.raises(ValueError, match="must hold"):
        from_recurrentgemma(module, {"params": {"linear_x": {}}})
    wide = GriffinBlock(D, num_heads=NH)
    wide_params = wide.init(jax.random.key(0), (None, None, D + 1))
    with pytest.raises(ValueError, match="linear_x"):
        to_recurrentgemma(wide, wide_params)
