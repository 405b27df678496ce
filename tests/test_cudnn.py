"""cuDNN's LSTM behind `rnn(..., use_cudnn=)`, `LSTM` and `Bidirectional`.

A CPU cannot run the cuDNN kernel, so `cudnn` (the fixture) puts
`jax.experimental.rnn.lstm_ref` (which JAX tests against cuDNN) in its
place, with the kernel's one limit kept (it refuses `jax.vmap`, as cuDNN's
primitive has no batching rule), and reports a CUDA backend. Everything
else, the weight packing, reversal, masks, carries, gradients and layouts,
runs for real and must equal jaxrnn's scan. Off the fixture the tests check
what a CPU user sees: "auto" never takes the kernel, True refuses clearly.
"""

import re

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from jax.experimental import rnn as jax_rnn
from keras_helpers import assert_parity
from properties import examples
from subsets import default_subset, only

import jaxrnn
from jaxrnn import LSTMCell, StackedCells, _cudnn, _cudnn_kernel, rnn

B, T, D, H = 4, 7, 3, 5
_leaves = jax.tree.leaves
LENGTHS = jnp.array([7, 3, 0, 1])  # full, partial, empty and one step


def _refuses_vmap(function):
    wrapped = jax.custom_batching.custom_vmap(function)

    @wrapped.def_vmap
    def _rule(*args):
        raise NotImplementedError(
            "Batching rule for 'rnn_fwd' not implemented"
        )

    return wrapped


def _stand_in_forward(config, x, h0, c0, weights, lengths):
    def forward(x, h0, c0, weights, lengths):
        out = _cudnn_kernel._reference_forward(
            config, x, h0, c0, weights, lengths
        )
        return out, (x, h0, c0, weights, lengths)

    return _refuses_vmap(forward)(x, h0, c0, weights, lengths)


def _stand_in_backward(config, residuals, cotangents):
    def backward(residuals, cotangents):
        x, h0, c0, weights, lengths = residuals
        _, pullback = jax.vjp(
            lambda *a: _cudnn_kernel._reference_forward(config, *a, lengths),
            x,
            h0,
            c0,
            weights,
        )
        return pullback(cotangents)

    return _refuses_vmap(backward)(residuals, cotangents)


@pytest.fixture
def cudnn(monkeypatch):
    """The stand-in kernel on a pretend CUDA backend; yields the list of
    the `KernelConfig` of every kernel call traced."""
    calls = []

    def forward(config, *args):
        calls.append(config)
        return _stand_in_forward(config, *args)

    monkeypatch.setattr(
        _cudnn_kernel,
        "KERNEL",
        _cudnn_kernel.Kernel(forward, _stand_in_backward),
    )
    monkeypatch.setattr(_cudnn, "backend_name", lambda: "cuda")
    return calls


def _shifted_forward(config, *args):
    (ys, h, c), residuals = _stand_in_forward(config, *args)
    return (ys + 100.0, h, c), residuals


def _shift_kernel_outputs(monkeypatch):
    """A stand-in kernel whose outputs are 100 more than the scan's, so a
    test tells which of the two ran."""
    monkeypatch.setattr(
        _cudnn_kernel,
        "KERNEL",
        _cudnn_kernel.Kernel(_shifted_forward, _stand_in_backward),
    )


def _inputs(seed=1, shape=(B, T, D)):
    return jax.random.normal(jax.random.key(seed), shape)


def _carry(seed=2, units=H):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return (
        jax.random.normal(k1, (B, units)),
        jax.random.normal(k2, (B, units)),
    )


def _params(cell, seed=0):
    return cell.init(jax.random.key(seed), D)


# -- the weight layout --------------------------------------------------------


@pytest.mark.parametrize(
    "layers, directions", [(1, 1), (2, 1), (1, 2), (2, 2)]
)
def test_packed_weights_unpack_to_keras_params(layers, directions):
    """`unpack_lstm_weights` (JAX's reading of cuDNN's layout) gives back
    each layer's and direction's Keras params, transposed, Keras' bias in
    b_ih and zeros in b_hh."""
    params = [
        [
            LSTMCell(H).init(
                jax.random.key(10 * layer + d),
                D if layer == 0 else H * directions,
            )
            for d in range(directions)
        ]
        for layer in range(layers)
    ]
    w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(
        _cudnn_kernel.pack_weights(params), D, H, layers, directions == 2
    )
    for layer in range(layers):
        for d in range(directions):
            p, pseudo = params[layer][d], layer * directions + d
            np.testing.assert_array_equal(w_ih[pseudo], p["kernel"].T)
            np.testing.assert_array_equal(
                w_hh[pseudo], p["recurrent_kernel"].T
            )
            np.testing.assert_array_equal(b_ih[pseudo], p["bias"])
            np.testing.assert_array_equal(b_hh[pseudo], 0)
    size = jax_rnn.get_num_params_in_lstm(D, H, layers, directions == 2)
    assert _cudnn_kernel.pack_weights(params).shape == (size,)


# -- rnn(use_cudnn=True) equals the scan --------------------------------------

DIRECTIONS = ["forward", "backward", "backward_keep_order"]


@default_subset(only(zero_output=[False]))
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("zero_output", [False, True])
def test_matches_scan(
    cudnn, direction, lengths, return_sequences, zero_output
):
    cell = LSTMCell(H)
    params, xs, carry = _params(cell), _inputs(), _carry()
    options = dict(
        seq_lengths=lengths,
        initial_carry=carry,
        go_backwards=direction != "forward",
        keep_order=direction == "backward_keep_order",
        return_sequences=return_sequences,
        zero_output_for_mask=zero_output,
    )
    want = rnn(cell, params, xs, **options)
    got = rnn(cell, params, xs, use_cudnn=True, **options)
    assert_parity("cudnn rnn", got, want)
    assert len(cudnn) == 1 and not cudnn[0].bidirectional


@settings(
    max_examples=examples(4, 40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batch=st.integers(1, 3),
    steps=st.integers(1, 6),
    layers=st.integers(1, 2),
    data=st.data(),
    direction=st.sampled_from(DIRECTIONS),
    return_sequences=st.booleans(),
    zero_output=st.booleans(),
)
def test_property_kernel_path_equals_scan(
    cudnn, batch, steps, layers, data, direction, return_sequences, zero_output
):
    """Any lengths (0 and T included), direction and output flags: the
    kernel path's outputs and final carries are the scan's."""
    lengths = jnp.array(
        data.draw(
            st.lists(st.integers(0, steps), min_size=batch, max_size=batch)
        )
    )
    cell = StackedCells([LSTMCell(H)] * layers) if layers > 1 else LSTMCell(H)
    params = cell.init(jax.random.key(steps), D)
    xs = _inputs(batch, (batch, steps, D))
    options = dict(
        seq_lengths=lengths,
        go_backwards=direction != "forward",
        keep_order=direction == "backward_keep_order",
        return_sequences=return_sequences,
        zero_output_for_mask=zero_output,
    )
    want = rnn(cell, params, xs, **options)
    got = rnn(cell, params, xs, use_cudnn=True, **options)
    assert_parity("cudnn property", got, want)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_gradients_match_scan(cudnn, direction):
    cell = LSTMCell(H)

    def loss(params, xs, carry, use_cudnn):
        ys, (h, c) = rnn(
            cell,
            params,
            xs,
            initial_carry=carry,
            seq_lengths=LENGTHS,
            go_backwards=direction != "forward",
            keep_order=direction == "backward_keep_order",
            use_cudnn=use_cudnn,
        )
        return jnp.sum(ys**2) + jnp.sum(jnp.sin(h) * c)

    grad = jax.grad(loss, argnums=(0, 1, 2))
    args = (_params(cell), _inputs(), _carry())
    assert_parity(
        "cudnn rnn grad",
        _leaves(grad(*args, True)),
        _leaves(grad(*args, False)),
    )
    assert cudnn


def test_padded_nan_reaches_nothing(cudnn):
    cell = LSTMCell(H)
    params = _params(cell)
    valid = jnp.arange(T)[None, :] < LENGTHS[:, None]
    xs = jnp.where(valid[..., None], _inputs(), jnp.nan)

    def loss(params, xs):
        ys, carry = rnn(cell, params, xs, seq_lengths=LENGTHS, use_cudnn=True)
        return jnp.sum(ys) + sum(jnp.sum(c) for c in carry)

    value, (grad_params, grad_xs) = jax.value_and_grad(loss, (0, 1))(
        params, xs
    )
    assert np.isfinite(value)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grad_params))
    assert np.isfinite(grad_xs).all()
    np.testing.assert_array_equal(np.asarray(grad_xs)[~np.asarray(valid)], 0.0)


def test_empty_rows_keep_their_initial_carry(cudnn):
    cell = LSTMCell(H)
    carry = _carry()
    ys, (h, c) = rnn(
        cell,
        _params(cell),
        _inputs(),
        initial_carry=carry,
        seq_lengths=LENGTHS,
        return_sequences=False,
        use_cudnn=True,
    )
    np.testing.assert_array_equal(h[2], carry[0][2])
    np.testing.assert_array_equal(c[2], carry[1][2])
    np.testing.assert_array_equal(ys[2], 0.0)


@pytest.mark.parametrize("layout", ["time_major", "unbatched"])
def test_layouts_match_scan(cudnn, layout):
    cell = LSTMCell(H)
    params = _params(cell)
    if layout == "time_major":
        xs, options = jnp.swapaxes(_inputs(), 0, 1), dict(time_major=True)
        options["seq_lengths"] = LENGTHS
    else:
        xs, options = (
            _inputs()[0],
            dict(initial_carry=(_carry()[0][0], _carry()[1][0])),
        )
    want = rnn(cell, params, xs, go_backwards=True, **options)
    got = rnn(cell, params, xs, go_backwards=True, use_cudnn=True, **options)
    assert_parity("cudnn rnn layouts", got, want)


def test_stack_is_one_multi_layer_call(cudnn):
    cell = StackedCells([LSTMCell(H), LSTMCell(H), LSTMCell(H)])
    params = cell.init(jax.random.key(0), D)
    carry = tuple(_carry(seed) for seed in (3, 4, 5))
    options = dict(initial_carry=carry, seq_lengths=LENGTHS, go_backwards=True)
    want = rnn(cell, params, _inputs(), **options)
    got = rnn(cell, params, _inputs(), use_cudnn=True, **options)
    assert_parity("cudnn stacked", got, want)
    assert [c.num_layers for c in cudnn] == [3]
    grad = jax.grad(
        lambda p, flag: jnp.sum(
            rnn(cell, p, _inputs(), seq_lengths=LENGTHS, use_cudnn=flag)[0]
        ),
        argnums=0,
    )
    assert_parity(
        "cudnn stacked grad",
        _leaves(grad(params, True)),
        _leaves(grad(params, False)),
    )


def test_vmap_takes_the_reference_where_the_kernel_cannot_batch(cudnn):
    """cuDNN has no batching rule; under vmap the same numbers come from
    `lstm_ref`, forwards and backwards."""
    cell = LSTMCell(H)
    params = _params(cell)

    def run(params, flag):
        return jax.vmap(
            lambda x, n: rnn(cell, params, x, seq_lengths=n, use_cudnn=flag)
        )(_inputs(), LENGTHS)

    assert_parity("cudnn vmap", run(params, True), run(params, False))

    def loss(params, flag):
        return jnp.sum(run(params, flag)[0] ** 2)

    assert_parity(
        "cudnn vmap grad",
        _leaves(jax.grad(loss)(params, True)),
        _leaves(jax.grad(loss)(params, False)),
    )


def test_training_dropout_draws_the_scans_mask(cudnn):
    cell = LSTMCell(H, dropout=0.4)
    key = jax.random.key(7)
    options = dict(key=key, training=True, seq_lengths=LENGTHS)
    want = rnn(cell, _params(cell), _inputs(), **options)
    got = rnn(cell, _params(cell), _inputs(), use_cudnn=True, **options)
    assert_parity("cudnn dropout", got, want)


def test_traced_mask_is_checked_when_the_program_runs(cudnn, monkeypatch):
    """Under jit, 'auto' runs the kernel where the mask is right-padded and
    the scan elsewhere (a kernel that adds 100 tells them apart)."""

    _shift_kernel_outputs(monkeypatch)
    cell = LSTMCell(H)
    params = _params(cell)
    run = jax.jit(
        lambda mask: rnn(cell, params, _inputs(), mask=mask, use_cudnn="auto")[
            0
        ]
    )
    right_padded = jnp.arange(T)[None, :] < LENGTHS[:, None]
    holed = right_padded.at[0, 2].set(False)
    assert float(run(right_padded)[0, 0, 0]) > 50
    scan = rnn(cell, params, _inputs(), mask=holed)[0]
    assert_parity("cudnn traced mask fallback", run(holed), scan)
    with pytest.raises(ValueError, match="traced mask.*seq_lengths"):
        jax.jit(
            lambda mask: rnn(
                cell, params, _inputs(), mask=mask, use_cudnn=True
            )
        )(right_padded)


def test_concrete_mask_is_read_for_its_lengths(cudnn):
    cell = LSTMCell(H)
    params = _params(cell)
    mask = jnp.arange(T)[None, :] < LENGTHS[:, None]
    got = rnn(cell, params, _inputs(), mask=mask, use_cudnn=True)
    assert_parity("cudnn mask", got, rnn(cell, params, _inputs(), mask=mask))
    with pytest.raises(ValueError, match="not right-padded"):
        rnn(
            cell,
            params,
            _inputs(),
            mask=mask.at[0, 2].set(False),
            use_cudnn=True,
        )


def test_forward_mode_takes_the_scan(cudnn):
    cell = LSTMCell(H)
    params = _params(cell)

    def f(xs, flag):
        return rnn(cell, params, xs, use_cudnn=flag)[0]

    tangent = jnp.ones((B, T, D))
    got = jax.jvp(lambda x: f(x, "auto"), (_inputs(),), (tangent,))
    want = jax.jvp(lambda x: f(x, False), (_inputs(),), (tangent,))
    assert_parity("cudnn jvp", got, want)
    assert not cudnn


# -- the layers -----------------------------------------------------------


@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_lstm_layer_auto_takes_the_kernel(cudnn, return_state, masked):
    layer = jaxrnn.LSTM(H, return_sequences=True, return_state=return_state)
    params = layer.init(jax.random.key(0), (None, T, D))
    mask = (jnp.arange(T)[None, :] < LENGTHS[:, None]) if masked else None
    want = jaxrnn.LSTM(
        H, return_sequences=True, return_state=return_state, use_cudnn=False
    )(params, _inputs(), mask=mask)
    got = layer(params, _inputs(), mask=mask)
    assert_parity("cudnn LSTM layer", got, want)
    assert len(cudnn) == 1


@default_subset(only(merge_mode=["concat"]))
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", "ave", None])
def test_bidirectional_is_one_call(
    cudnn, return_sequences, return_state, masked, merge_mode
):
    flags = dict(return_sequences=return_sequences, return_state=return_state)
    fused = jaxrnn.Bidirectional(
        jaxrnn.LSTM(H, **flags), merge_mode=merge_mode
    )
    separate = jaxrnn.Bidirectional(
        jaxrnn.LSTM(H, use_cudnn=False, **flags), merge_mode=merge_mode
    )
    params = fused.init(jax.random.key(0), (None, T, D))
    mask = (jnp.arange(T)[None, :] < LENGTHS[:, None]) if masked else None
    state = None
    if return_state:
        state = [*_carry(3), *_carry(4)]
    want = separate(params, _inputs(), mask=mask, initial_state=state)
    got = fused(params, _inputs(), mask=mask, initial_state=state)
    assert_parity("cudnn Bidirectional", got, want)
    assert [c.bidirectional for c in cudnn] == [True]


@pytest.mark.parametrize("layout", ["time_major", "unbatched", "dropout"])
def test_bidirectional_layouts_and_dropout(cudnn, layout):
    flags = dict(return_sequences=True)
    xs, call = _inputs(), {}
    if layout == "time_major":
        flags["time_major"], xs = True, jnp.swapaxes(xs, 0, 1)
    elif layout == "unbatched":
        xs = xs[0]
    else:
        flags["dropout"] = 0.3
        call = dict(key=jax.random.key(5), training=True)
    fused = jaxrnn.Bidirectional(jaxrnn.LSTM(H, **flags))
    separate = jaxrnn.Bidirectional(jaxrnn.LSTM(H, use_cudnn=False, **flags))
    params = fused.init(jax.random.key(0), (None, T, D))
    assert_parity(
        "cudnn Bidirectional layouts",
        fused(params, xs, **call),
        separate(params, xs, **call),
    )
    assert cudnn


def test_bidirectional_gradients_match(cudnn):
    layer = jaxrnn.Bidirectional(jaxrnn.LSTM(H, return_sequences=True))
    params = layer.init(jax.random.key(0), (None, T, D))
    mask = jnp.arange(T)[None, :] < LENGTHS[:, None]

    def loss(params, use_cudnn):
        bi = jaxrnn.Bidirectional(
            jaxrnn.LSTM(H, return_sequences=True, use_cudnn=use_cudnn)
        )
        return jnp.sum(bi(params, _inputs(), mask=mask) ** 2)

    assert_parity(
        "cudnn Bidirectional grad",
        _leaves(jax.grad(loss)(params, "auto")),
        _leaves(jax.grad(loss)(params, False)),
    )


# -- the decision -----------------------------------------------------------

REFUSALS = {
    "gru": (jaxrnn.GRUCell(H), {}, "LSTMCell"),
    "relu": (LSTMCell(H, activation="relu"), {}, "activation='relu'"),
    "hard_sigmoid": (
        LSTMCell(H, recurrent_activation="hard_sigmoid"),
        {},
        "recurrent_activation='hard_sigmoid'",
    ),
    "no_bias": (LSTMCell(H, use_bias=False), {}, "use_bias=False"),
    "recurrent_dropout": (
        LSTMCell(H, recurrent_dropout=0.2),
        {"training": True},
        "recurrent_dropout",
    ),
    "stack_widths": (
        StackedCells([LSTMCell(4), LSTMCell(5)]),
        {},
        r"units \[4, 5\]",
    ),
    "stack_dropout": (
        StackedCells([LSTMCell(H, dropout=0.1), LSTMCell(H)]),
        {"training": True},
        "dropout in training in a stack",
    ),
    "bfloat16": (LSTMCell(H), {"compute_dtypes": ["bfloat16"]}, "bfloat16"),
    "unroll": (LSTMCell(H), {"unroll": True}, "unroll=True"),
    "remat": (LSTMCell(H), {"remat": True}, "remat=True"),
    "jvp": (LSTMCell(H), {"forward_mode": True}, "forward-mode"),
    "holes": (
        LSTMCell(H),
        {"mask_layout": "not right-padded"},
        "not right-padded",
    ),
    "cpu": (LSTMCell(H), {"backend": "cpu"}, "backend is 'cpu'"),
    "rocm": (LSTMCell(H), {"backend": "rocm"}, "backend is 'rocm'"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusal_names_the_setting(case):
    cell, settings, reason = REFUSALS[case]
    settings = {"backend": "cuda", **settings}
    refusal = _cudnn.cudnn_refusal(cell, **settings)
    assert refusal is not None
    assert re.search(reason, refusal), refusal


ELIGIBLE = {
    "plain": (LSTMCell(H), {}),
    "stack": (StackedCells([LSTMCell(H), LSTMCell(H)]), {}),
    "lengths": (LSTMCell(H), {"mask_layout": "lengths"}),
    "right_padded": (LSTMCell(H), {"mask_layout": "right-padded"}),
    "traced": (LSTMCell(H), {"mask_layout": "traced"}),
    "int_unroll": (LSTMCell(H), {"unroll": 4}),
    "dropout_training": (LSTMCell(H, dropout=0.3), {"training": True}),
    "recurrent_dropout_inference": (LSTMCell(H, recurrent_dropout=0.3), {}),
    "callable_activations": (
        LSTMCell(H, activation=jnp.tanh, recurrent_activation=jax.nn.sigmoid),
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(ELIGIBLE))
def test_eligible_settings(case):
    cell, settings = ELIGIBLE[case]
    assert _cudnn.cudnn_refusal(cell, backend="cuda", **settings) is None


@pytest.mark.parametrize(
    "precision, expected",
    [
        (None, "HIGH"),
        ("default", "HIGH"),
        ("high", "HIGH"),
        ("highest", "HIGHEST"),
        ("float32", "HIGHEST"),
        (jax.lax.Precision.HIGHEST, "HIGHEST"),
    ],
)
def test_kernel_precision(precision, expected):
    assert _cudnn.kernel_precision(precision) == jax.lax.Precision[expected]


# -- on this CPU, for real ----------------------------------------------------


def test_auto_on_cpu_is_the_scan(monkeypatch):
    called = []
    monkeypatch.setattr(
        _cudnn_kernel,
        "KERNEL",
        _cudnn_kernel.Kernel(
            lambda *a: called.append(a), lambda *a: called.append(a)
        ),
    )
    cell = LSTMCell(H)
    params = _params(cell)
    want = rnn(cell, params, _inputs(), seq_lengths=LENGTHS)
    got = rnn(cell, params, _inputs(), seq_lengths=LENGTHS, use_cudnn="auto")
    np.testing.assert_array_equal(got[0], want[0])
    layer = jaxrnn.Bidirectional(jaxrnn.LSTM(H))
    layer(layer.init(jax.random.key(0), (None, T, D)), _inputs())
    assert not called


@pytest.mark.skipif(
    jax.default_backend() == "gpu", reason="checks the refusal off a GPU"
)
def test_true_off_a_gpu_refuses_clearly():
    cell = LSTMCell(H)
    params = _params(cell)
    with pytest.raises(ValueError, match="use_cudnn=True.*backend is 'cpu'"):
        rnn(cell, params, _inputs(), use_cudnn=True)
    layer = jaxrnn.LSTM(H, use_cudnn=True)
    with pytest.raises(ValueError, match="backend is 'cpu'.*use_cudnn='auto'"):
        layer(params, _inputs())
    bidirectional = jaxrnn.Bidirectional(jaxrnn.LSTM(H, use_cudnn=True))
    both = bidirectional.init(jax.random.key(0), (None, T, D))
    with pytest.raises(ValueError, match="backend is 'cpu'"):
        bidirectional(both, _inputs())


@pytest.mark.parametrize("value", ["yes", 1, None, "True"])
def test_use_cudnn_values_are_checked(value):
    with pytest.raises(ValueError, match="use_cudnn.*'auto', True or False"):
        jaxrnn.LSTM(H, use_cudnn=value)
    cell = LSTMCell(H)
    with pytest.raises(ValueError, match="use_cudnn"):
        rnn(cell, _params(cell), _inputs(), use_cudnn=value)


def test_stand_in_matches_the_scan_alone():
    """The fixture's kernel is itself right: `lstm_ref` on packed weights
    equals jaxrnn's scan (so the tests above compare two real things)."""
    cell = LSTMCell(H)
    params = _params(cell)
    config = _cudnn_kernel.KernelConfig(
        D, H, 1, False, jax.lax.Precision.HIGHEST
    )
    carry = _carry()
    (ys, h, c), _ = _stand_in_forward(
        config,
        _inputs(),
        carry[0][None],
        carry[1][None],
        _cudnn_kernel.pack_weights([[params]]),
        jnp.full((B,), T, jnp.int32),
    )
    want, (want_h, want_c) = rnn(cell, params, _inputs(), initial_carry=carry)
    assert_parity("cudnn stand-in", (ys, h[0], c[0]), (want, want_h, want_c))


def test_bidirectional_traced_mask_is_one_call_where_right_padded(
    cudnn, monkeypatch
):
    _shift_kernel_outputs(monkeypatch)
    flags = dict(return_sequences=True, return_state=True)
    fused = jaxrnn.Bidirectional(jaxrnn.LSTM(H, **flags))
    separate = jaxrnn.Bidirectional(jaxrnn.LSTM(H, use_cudnn=False, **flags))
    params = fused.init(jax.random.key(0), (None, T, D))
    run = jax.jit(lambda mask: fused(params, _inputs(), mask=mask))
    right_padded = jnp.arange(T)[None, :] < LENGTHS[:, None]
    holed = right_padded.at[0, 2].set(False)
    assert float(run(right_padded)[0][0, 0, 0]) > 50
    assert_parity(
        "cudnn Bidirectional traced mask fallback",
        run(holed),
        separate(params, _inputs(), mask=holed),
    )


# -- on a CUDA GPU, the real kernel (benchmarks/gpu_run.sh runs these) ------

on_cuda = pytest.mark.skipif(
    _cudnn.backend_name() != "cuda", reason="needs cuDNN (a CUDA GPU)"
)


@on_cuda
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_real_kernel_matches_scan(direction):
    cell = LSTMCell(H, precision="highest")
    options = dict(
        seq_lengths=LENGTHS,
        initial_carry=_carry(),
        go_backwards=direction != "forward",
        keep_order=direction == "backward_keep_order",
    )

    def loss(params, xs, flag):
        ys, (h, c) = rnn(cell, params, xs, use_cudnn=flag, **options)
        return jnp.sum(ys**2) + jnp.sum(h * c), (ys, h, c)

    run = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    args = (_params(cell), _inputs())
    assert_parity(
        "cudnn real kernel",
        _leaves(run(*args, True)),
        _leaves(run(*args, False)),
    )


@on_cuda
def test_real_kernel_stack_and_bidirectional():
    stack = StackedCells([LSTMCell(H, precision="highest")] * 2)
    params = stack.init(jax.random.key(0), D)
    assert_parity(
        "cudnn real kernel stacked",
        rnn(stack, params, _inputs(), seq_lengths=LENGTHS, use_cudnn=True),
        rnn(stack, params, _inputs(), seq_lengths=LENGTHS),
    )
    flags = dict(return_sequences=True, precision="highest")
    fused = jaxrnn.Bidirectional(jaxrnn.LSTM(H, use_cudnn=True, **flags))
    separate = jaxrnn.Bidirectional(jaxrnn.LSTM(H, use_cudnn=False, **flags))
    both = fused.init(jax.random.key(0), (None, T, D))
    mask = jnp.arange(T)[None, :] < LENGTHS[:, None]
    assert_parity(
        "cudnn real kernel Bidirectional",
        fused(both, _inputs(), mask=mask),
        separate(both, _inputs(), mask=mask),
    )
    vmapped = jax.vmap(lambda x: rnn(stack, params, x, use_cudnn=True)[0])
    assert_parity(
        "cudnn real kernel vmap",
        vmapped(_inputs()),
        rnn(stack, params, _inputs())[0],
    )


# -- Sequential: a run of LSTM layers is one multi-layer call ------------------


def _sequential(*layers):
    return jaxrnn.layers.Sequential(list(layers))


def _without_cudnn(model):
    import dataclasses

    return jaxrnn.layers.Sequential(
        [
            dataclasses.replace(layer, use_cudnn=False)
            if isinstance(layer, jaxrnn.LSTM)
            else layer
            for layer in model.layers
        ]
    )


def test_sequential_lstm_run_is_one_call(cudnn):
    model = _sequential(
        jaxrnn.LSTM(H, return_sequences=True),
        jaxrnn.LSTM(H, return_sequences=True),
        jaxrnn.LSTM(H),
        jaxrnn.layers.Dense(2),
    )
    params = model.init(jax.random.key(0), (None, T, D))
    mask = jnp.arange(T)[None, :] < LENGTHS[:, None]
    got = model(params, _inputs(), mask=mask)
    assert [c.num_layers for c in cudnn] == [3]
    assert_parity(
        "cudnn Sequential stack",
        got,
        _without_cudnn(model)(params, _inputs(), mask=mask),
    )


def test_sequential_embedding_mask_reaches_the_stack(cudnn):
    model = _sequential(
        jaxrnn.layers.Embedding(9, D, mask_zero=True),
        jaxrnn.LSTM(H, return_sequences=True),
        jaxrnn.LSTM(H, return_sequences=True, zero_output_for_mask=True),
    )
    params = model.init(jax.random.key(0), (None, T))
    ids = jax.random.randint(jax.random.key(1), (B, T), 1, 9)
    ids = jnp.where(jnp.arange(T)[None, :] < LENGTHS[:, None], ids, 0)
    got = model(params, ids)
    assert [c.num_layers for c in cudnn] == [2]
    assert_parity(
        "cudnn Sequential stack", got, _without_cudnn(model)(params, ids)
    )


@pytest.mark.parametrize(
    "layers, calls",
    [
        ((jaxrnn.LSTM(H, return_sequences=True), jaxrnn.LSTM(4)), [1, 1]),
        (
            (
                jaxrnn.LSTM(H, return_sequences=True, go_backwards=True),
                jaxrnn.LSTM(H),
            ),
            [1, 1],
        ),
        (
            (
                jaxrnn.LSTM(H, return_sequences=True, use_cudnn=False),
                jaxrnn.LSTM(H, return_sequences=True),
                jaxrnn.LSTM(H),
            ),
            [2],
        ),
    ],
    ids=["widths", "go_backwards", "opted_out"],
)
def test_sequential_runs_that_stay_apart(cudnn, layers, calls):
    model = _sequential(*layers)
    params = model.init(jax.random.key(0), (None, T, D))
    got = model(params, _inputs())
    assert [c.num_layers for c in cudnn] == calls
    assert_parity(
        "cudnn Sequential stack",
        got,
        _without_cudnn(model)(params, _inputs()),
    )


def test_sequential_dropout_in_training_keeps_each_layers_mask(cudnn):
    model = _sequential(
        jaxrnn.LSTM(H, return_sequences=True, dropout=0.3),
        jaxrnn.LSTM(H),
    )
    params = model.init(jax.random.key(0), (None, T, D))
    key = jax.random.key(4)
    got = model(params, _inputs(), key=key, training=True)
    assert [c.num_layers for c in cudnn] == [1, 1]
    assert_parity(
        "cudnn Sequential stack",
        got,
        _without_cudnn(model)(params, _inputs(), key=key, training=True),
    )
