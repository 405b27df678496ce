"""Packed sequences: `call_like_torch(..., lengths=)` and `TorchStack` against
torch's ``pack_padded_sequence`` / ``pad_packed_sequence``, under jit, and
every rejected `lengths`."""

import functools
import itertools

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from properties import examples

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from keras_helpers import assert_parity  # noqa: E402
from torch.nn.utils.rnn import (  # noqa: E402
    pack_padded_sequence,
    pad_packed_sequence,
)

import jaxrnn  # noqa: E402
from jaxrnn.interop import (  # noqa: E402
    TorchStack,
    call_like_torch,
    from_torch,
    layer_from_torch,
)

B, T, D, H = 5, 6, 4, 3
# Unsorted, with ties, a full-length row and a length-1 row.
LENGTHS = np.array([3, 6, 1, 6, 3])
MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def _module(
    mode, num_layers=1, bidirectional=False, batch_first=False, seed=0
):
    torch.manual_seed(seed)
    kwargs = dict(
        input_size=D,
        hidden_size=H,
        num_layers=num_layers,
        batch_first=batch_first,
        bidirectional=bidirectional,
    )
    if mode.startswith("RNN"):
        return torch.nn.RNN(nonlinearity=mode[4:].lower(), **kwargs)
    return getattr(torch.nn, mode)(**kwargs)


def _inputs(batch_first, batch=B, seed=1):
    rng = np.random.default_rng(seed)
    shape = (batch, T, D) if batch_first else (T, batch, D)
    return rng.standard_normal(shape).astype(np.float32)


def _initial_state(module, batch=B, seed=2):
    rng = np.random.default_rng(seed)
    shape = (module.num_layers * (2 if module.bidirectional else 1), batch, H)
    states = [
        rng.standard_normal(shape).astype(np.float32)
        for _ in range(2 if module.mode == "LSTM" else 1)
    ]
    return states[0] if len(states) == 1 else tuple(states)


def _run_packed(
    module,
    x,
    lengths,
    initial_state=None,
    total_length=None,
    enforce_sorted=False,
):
    """torch on the packed batch, unpacked: [output, h_n(, c_n)] in NumPy."""
    hx = (
        None
        if initial_state is None
        else jax.tree.map(torch.from_numpy, initial_state)
    )
    with torch.no_grad():
        packed = pack_padded_sequence(
            torch.from_numpy(x),
            torch.as_tensor(lengths),
            batch_first=module.batch_first,
            enforce_sorted=enforce_sorted,
        )
        output, states = module(packed, hx)
        output, _ = pad_packed_sequence(
            output, batch_first=module.batch_first, total_length=total_length
        )
    return [output.numpy()] + [s.numpy() for s in jax.tree.leaves(states)]


def _ours(layer, params, x, lengths, initial_state=None, **kwargs):
    output, states = call_like_torch(
        layer,
        params,
        jnp.asarray(x),
        None
        if initial_state is None
        else jax.tree.map(jnp.asarray, initial_state),
        lengths=lengths,
        **kwargs,
    )
    return [np.asarray(output)] + [
        np.asarray(s) for s in jax.tree.leaves(states)
    ]


def _check(name, ours, theirs):
    """Parity per returned array, each recorded under its own name."""
    assert len(ours) == len(theirs)
    for part, a, b in zip(["output", "h_n", "c_n"], ours, theirs):
        assert_parity(f"torch packed {part}[{name}]", a, b)


# Every mode meets every (num_layers, bidirectional); batch_first and an
# initial state run through their four values across them.
_FLAGS = list(itertools.product([True, False], [True, False]))
CASES = [
    (
        mode,
        num_layers,
        bidirectional,
        *_FLAGS[(i + num_layers + bidirectional) % 4],
    )
    for i, mode in enumerate(MODES)
    for num_layers, bidirectional in itertools.product(
        [1, 2, 3], [False, True]
    )
]
IDS = [
    f"{m}-L{n}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-"
    f"{'h0' if h0 else 'zeros'}"
    for m, n, bi, bf, h0 in CASES
]


@pytest.mark.parametrize(
    "mode, num_layers, bidirectional, batch_first, with_state", CASES, ids=IDS
)
def test_packed_sequences_match_torch(
    mode, num_layers, bidirectional, batch_first, with_state
):
    module = _module(mode, num_layers, bidirectional, batch_first)
    x = _inputs(batch_first)
    state = _initial_state(module) if with_state else None
    layer = layer_from_torch(module)
    params = from_torch(module.state_dict(), layer)
    _check(
        "-".join(
            map(
                str, (mode, num_layers, bidirectional, batch_first, with_state)
            )
        ),
        _ours(layer, params, x, LENGTHS, state),
        _run_packed(module, x, LENGTHS, state),
    )


@pytest.mark.parametrize("batch_first", [True, False])
def test_output_is_cut_to_the_longest_length(batch_first):
    """pad_packed_sequence pads to the batch's longest length, here 4 < T."""
    module = _module("LSTM", 2, True, batch_first, seed=3)
    lengths = np.array([2, 4, 1, 4, 3])
    x = _inputs(batch_first)
    layer = layer_from_torch(module)
    ours = _ours(layer, from_torch(module.state_dict(), layer), x, lengths)
    assert ours[0].shape == ((B, 4, 2 * H) if batch_first else (4, B, 2 * H))
    _check(
        f"LSTM-shorter-{batch_first}", ours, _run_packed(module, x, lengths)
    )


@pytest.mark.parametrize("total_length", [4, T, T + 3])
def test_total_length_matches_torch(total_length):
    module = _module("GRU", 2, True, batch_first=True, seed=4)
    lengths = np.array([2, 4, 1, 4, 3])
    x = _inputs(True)
    layer = layer_from_torch(module)
    ours = _ours(
        layer,
        from_torch(module.state_dict(), layer),
        x,
        lengths,
        total_length=total_length,
    )
    assert ours[0].shape == (B, total_length, 2 * H)
    _check(
        f"GRU-total-{total_length}",
        ours,
        _run_packed(module, x, lengths, total_length=total_length),
    )


def test_sorted_lengths_match_torch_enforce_sorted():
    module = _module("LSTM", 1, True, seed=5)
    lengths = np.array([6, 5, 5, 2, 1])
    x = _inputs(False)
    layer = layer_from_torch(module)
    _check(
        "LSTM-sorted",
        _ours(layer, from_torch(module.state_dict(), layer), x, lengths),
        _run_packed(module, x, lengths, enforce_sorted=True),
    )


def test_torch_stack_of_unidirectional_layers_takes_lengths():
    module = _module("LSTM", 3, seed=6)
    stack = TorchStack(
        [jaxrnn.LSTM(H, return_sequences=True, time_major=True)] * 3
    )
    params = from_torch(module.state_dict(), stack)
    x, state = _inputs(False), _initial_state(module)
    y, states = stack(
        params,
        jnp.asarray(x),
        initial_state=state,
        lengths=jnp.asarray(LENGTHS),
    )
    _check(
        "LSTM-TorchStack",
        [np.asarray(y)] + _leaves(states),
        _run_packed(module, x, LENGTHS, state),
    )


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


@pytest.mark.parametrize(
    "lengths",
    [
        LENGTHS.tolist(),
        LENGTHS.astype(np.int64),
        LENGTHS.astype(np.uint8),
        jnp.asarray(LENGTHS),
        torch.as_tensor(LENGTHS),
    ],
    ids=["list", "int64", "uint8", "jax", "torch"],
)
def test_lengths_of_any_integer_kind(lengths):
    layer, params = _gru()
    x = _inputs(False)
    expected = _ours(layer, params, x, jnp.asarray(LENGTHS, jnp.int32))
    for a, b in zip(_ours(layer, params, x, lengths), expected):
        np.testing.assert_array_equal(a, b)


@functools.cache
def _gru():
    """A one-layer bidirectional GRU (time-major) and its torch params."""
    module = _module("GRU", 1, True, seed=7)
    layer = layer_from_torch(module)
    return layer, from_torch(module.state_dict(), layer)


# Properties: what a packed row sees is its own prefix, nothing past it.


def test_packed_rows_equal_their_truncated_sequences():
    """Each row, run alone on its valid steps, gives the packed outputs up to
    its length and the same final states."""
    module = _module("LSTM", 2, True, batch_first=True, seed=8)
    layer = layer_from_torch(module)
    params = from_torch(module.state_dict(), layer)
    x = _inputs(True)
    output, h_n, c_n = _ours(layer, params, x, LENGTHS)
    # One compilation per shape beats eager dispatch of every step.
    run = jax.jit(lambda x: call_like_torch(layer, params, x))
    for length in np.unique(LENGTHS):  # rows of one length run together
        rows = np.flatnonzero(length == LENGTHS)
        alone = _leaves(run(jnp.asarray(x[rows, :length])))
        np.testing.assert_allclose(output[rows, :length], alone[0], atol=1e-6)
        np.testing.assert_array_equal(output[rows, length:], 0)
        np.testing.assert_allclose(h_n[:, rows], alone[1], atol=1e-6)
        np.testing.assert_allclose(c_n[:, rows], alone[2], atol=1e-6)


def test_padding_gets_no_gradient():
    layer, params = _gru()
    x = jnp.asarray(_inputs(False))

    def loss(x):
        y, h_n = call_like_torch(layer, params, x, lengths=LENGTHS)
        return jnp.sum(y**2) + jnp.sum(h_n**2)

    grads = np.asarray(jax.jit(jax.grad(loss))(x))  # (T, B, D)
    padding = np.arange(T)[:, None] >= LENGTHS[None, :]
    np.testing.assert_array_equal(grads[padding], 0)
    assert np.all(np.abs(grads[~padding]).sum(-1) > 0)


@functools.cache
def _jitted_lstm():
    """A jitted 2-layer bidirectional batch-first LSTM call, lengths traced
    (one compilation for every lengths vector), and its torch module."""
    module = _module("LSTM", 2, True, batch_first=True, seed=9)
    layer = layer_from_torch(module)
    params = from_torch(module.state_dict(), layer)

    @jax.jit
    def run(x, lengths, state):
        return call_like_torch(
            layer, params, x, state, lengths=lengths, total_length=T
        )

    return module, run


@settings(max_examples=examples(5, 60), deadline=None)
@given(
    lengths=st.lists(st.integers(1, T), min_size=B, max_size=B),
    seed=st.integers(0, 2**16),
)
def test_jitted_traced_lengths_match_torch(lengths, seed):
    module, run = _jitted_lstm()
    x, state = _inputs(True, seed=seed), _initial_state(module, seed=seed)
    output, (h_n, c_n) = run(
        jnp.asarray(x), jnp.asarray(lengths), jax.tree.map(jnp.asarray, state)
    )
    _check(
        "LSTM-jit",
        _leaves([output, h_n, c_n]),
        _run_packed(module, x, np.array(lengths), state, total_length=T),
    )


def test_jit_equals_eager():
    layer, params = _gru()
    x = jnp.asarray(_inputs(False))
    run = jax.jit(
        lambda x, lengths: call_like_torch(
            layer, params, x, lengths=lengths, total_length=T
        )
    )
    eager = call_like_torch(layer, params, x, lengths=LENGTHS)
    for a, b in zip(_leaves(run(x, jnp.asarray(LENGTHS))), _leaves(eager)):
        np.testing.assert_allclose(a, b, atol=1e-6)


# Rejected lengths: the message names what was expected and what came.


@pytest.mark.parametrize(
    "lengths, error, match",
    [
        (
            LENGTHS.astype(np.float32),
            TypeError,
            r"`lengths` must have an integer dtype.*float32",
        ),
        (np.ones(B, bool), TypeError, r"`lengths` must have an integer.*bool"),
        ([1.0] * B, TypeError, r"`lengths` must have an integer"),
        (
            LENGTHS[:-1],
            ValueError,
            r"`lengths` must have shape \(5,\), got \(4,\)",
        ),
        (LENGTHS[:, None], ValueError, r"`lengths` must have shape \(5,\)"),
        (
            np.array(3),
            ValueError,
            r"`lengths` must have shape \(5,\), got \(\)",
        ),
        (
            np.array([3, 0, 1, 2, 2]),
            ValueError,
            r"\[1, T\] = \[1, 6\].*refuses empty.*\[3, 0, 1, 2, 2\]",
        ),
        (np.array([3, -1, 1, 2, 2]), ValueError, r"\[1, T\] = \[1, 6\]"),
        (np.array([3, 7, 1, 2, 2]), ValueError, r"\[1, T\] = \[1, 6\]"),
    ],
    ids=[
        "float",
        "bool",
        "float-list",
        "short",
        "2d",
        "scalar",
        "zero",
        "negative",
        "too-long",
    ],
)
def test_rejects_bad_lengths(lengths, error, match):
    layer, params = _gru()
    with pytest.raises(error, match=match):
        call_like_torch(
            layer, params, jnp.asarray(_inputs(False)), lengths=lengths
        )


def test_torch_refuses_empty_sequences_too():
    with pytest.raises(RuntimeError, match="greater than 0"):
        pack_padded_sequence(
            torch.zeros(T, B, D),
            torch.tensor([3, 0, 1, 2, 2]),
            enforce_sorted=False,
        )


@pytest.mark.parametrize(
    "total_length, error, match",
    [
        (
            5,
            ValueError,
            r"`total_length` must be at least the longest length, 6, "
            r"got 5",
        ),
        (0, ValueError, r"`total_length` must be a positive int, got 0"),
        (6.0, TypeError, r"`total_length` must be a positive int"),
    ],
)
def test_rejects_bad_total_length(total_length, error, match):
    layer, params = _gru()
    with pytest.raises(error, match=match):
        call_like_torch(
            layer,
            params,
            jnp.asarray(_inputs(False)),
            lengths=LENGTHS,
            total_length=total_length,
        )


def test_rejects_total_length_without_lengths():
    layer, params = _gru()
    with pytest.raises(ValueError, match="total_length.*with `lengths`"):
        call_like_torch(
            layer, params, jnp.asarray(_inputs(False)), total_length=T
        )


def test_rejects_lengths_for_unbatched_inputs():
    layer, params = _gru()
    with pytest.raises(
        ValueError,
        match=r"`lengths` needs batched inputs.*"
        r"\(6, 4\)",
    ):
        call_like_torch(
            layer,
            params,
            jnp.asarray(_inputs(False)[:, 0]),
            lengths=np.array([3]),
        )


def test_traced_lengths_need_total_length():
    layer, params = _gru()
    run = jax.jit(
        lambda x, lengths: call_like_torch(layer, params, x, lengths=lengths)
    )
    with pytest.raises(
        ValueError,
        match=r"traced.*pass total_length "
        r"\(e.g. T = 6\)",
    ):
        run(jnp.asarray(_inputs(False)), jnp.asarray(LENGTHS))


def test_torch_stack_rejects_bad_lengths():
    stack = layer_from_torch(
        {
            "mode": "GRU",
            "hidden_size": H,
            "num_layers": 2,
            "bidirectional": True,
        }
    )
    # Shapes suffice: the lengths are checked before any layer runs.
    params = jax.eval_shape(
        lambda: stack.init(jax.random.key(0), (None, None, D))
    )
    with pytest.raises(ValueError, match=r"`lengths` must have shape \(5,\)"):
        stack(params, jnp.asarray(_inputs(False)), lengths=LENGTHS[:2])
