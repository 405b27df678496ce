"""The gate-order table (jaxrnn/interop/_gates.py): its permutations round
trip, each peer's entry is what that peer computes (one step of the real
peer against the Keras-order jaxrnn cell, weights placed by the table alone),
and unknown names are refused."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from keras_helpers import assert_parity

import jaxrnn
from jaxrnn.interop import _gates

B, D, H = 3, 4, 5

PAIRS = [
    (src, dst, kind)
    for kind in _gates.KERAS_GATES
    for src, dst in itertools.product(_gates.FRAMEWORKS, repeat=2)
    if kind in _gates.TABLE[src] and kind in _gates.TABLE[dst]
]
ENTRIES = [
    (framework, kind)
    for framework in _gates.FRAMEWORKS
    for kind in _gates.TABLE[framework]
]


# The table itself.


@pytest.mark.parametrize("framework, kind", ENTRIES)
def test_each_entry_orders_exactly_keras_gates(framework, kind):
    entry = _gates.gate_order(framework, kind)
    assert entry.kind == kind
    assert sorted(entry.gates) == sorted(_gates.KERAS_GATES[kind])
    assert len(entry.names) == len(entry.gates)
    assert entry.source


@pytest.mark.parametrize("src, dst, kind", PAIRS)
def test_reorder_there_and_back_is_the_identity(src, dst, kind):
    gates = len(_gates.KERAS_GATES[kind])
    a = np.arange(2 * gates * 3).reshape(2, gates * 3)
    there = _gates.reorder(a, src, dst, kind)
    np.testing.assert_array_equal(_gates.reorder(there, dst, src, kind), a)
    forth, back = (
        _gates.permutation(src, dst, kind),
        _gates.permutation(dst, src, kind),
    )
    assert tuple(forth[k] for k in back) == tuple(range(gates))


@pytest.mark.parametrize("src, dst, kind", PAIRS)
def test_reorder_moves_whole_blocks_along_any_axis(src, dst, kind):
    gates = len(_gates.KERAS_GATES[kind])
    blocks = np.repeat(np.arange(gates), 2)  # block k holds k, twice
    moved = _gates.reorder(
        jnp.asarray(blocks)[:, None], src, dst, kind, axis=0
    )
    want = np.repeat(_gates.permutation(src, dst, kind), 2)[:, None]
    np.testing.assert_array_equal(moved, want)


def test_split_keys_blocks_by_keras_letter():
    parts = _gates.split(np.arange(8), "haiku", "lstm")  # i, g, f, o
    np.testing.assert_array_equal(parts["c"], [2, 3])
    np.testing.assert_array_equal(parts["f"], [4, 5])


def test_names_in_keras_order_are_the_peer_letters_rearranged():
    assert _gates.gate_order("torch", "gru").names_in_keras_order == (
        "z",
        "r",
        "n",
    )
    assert _gates.gate_order("haiku", "lstm").names_in_keras_order == (
        "i",
        "f",
        "g",
        "o",
    )


def test_unknown_framework_names_the_known_ones():
    with pytest.raises(ValueError, match="known: .*'haiku'.*'torch'"):
        _gates.permutation("mxnet", "keras", "lstm")


def test_unknown_kind_names_the_framework_s_kinds():
    with pytest.raises(ValueError, match=r"'gru'.*'cudnn'.*\['lstm'\]"):
        _gates.reorder(np.zeros(6), "keras", "cudnn", "gru")


def test_an_axis_the_gates_do_not_divide_is_refused():
    with pytest.raises(ValueError, match="size 7 does not split into 3"):
        _gates.reorder(np.zeros(7), "keras", "torch", "gru")


# Each peer's entry against the peer: Keras-order params from a jaxrnn cell,
# placed in the peer's layout by the table, one step of each.


def _normal(shape, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)


def _case(kind, reset_after=True):
    """(cell, random params with random biases, x (B, D), carry)."""
    cell = (
        jaxrnn.LSTMCell(H)
        if kind == "lstm"
        else jaxrnn.GRUCell(H, reset_after=reset_after)
    )
    params = cell.init(jax.random.key(0), D)
    params = {
        name: _normal(value.shape, seed)
        for seed, (name, value) in enumerate(sorted(params.items()))
    }
    h = _normal((B, H), 10)
    carry = (h, _normal((B, H), 11)) if kind == "lstm" else h
    return cell, params, _normal((B, D), 12, 1.0), carry


def _keras_step(cell, params, x, carry):
    return cell(params, carry, x)[1]


def _to(framework, kind, array):
    return _gates.reorder(array, "keras", framework, kind)


def _gru_gate_bias(params):
    """Keras reset_after biases as peers with one input-side bias hold
    them: both rows on z and r, the input row on the candidate."""
    rows = _gates.split(params["bias"], "keras", "gru")
    return jnp.concatenate(
        [
            rows["z"][0] + rows["z"][1],
            rows["r"][0] + rows["r"][1],
            rows["h"][0],
        ]
    )


def _no_candidate_recurrent_bias(params):
    h = _gates.gate_order("keras", "gru").gates.index("h")
    return {**params, "bias": params["bias"].at[1, h * H : (h + 1) * H].set(0)}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_torch_entry_matches_nn_lstm_and_gru(kind):
    torch = pytest.importorskip("torch")
    cell, p, x, carry = _case(kind)

    def t(a):
        return torch.from_numpy(np.array(a, np.float32))

    bias = np.asarray(p["bias"])
    b_ih, b_hh = (
        (bias, np.zeros_like(bias)) if kind == "lstm" else (bias[0], bias[1])
    )
    module = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(
        D, H, batch_first=True
    )
    module.load_state_dict(
        {
            "weight_ih_l0": t(_to("torch", kind, np.asarray(p["kernel"])).T),
            "weight_hh_l0": t(
                _to("torch", kind, np.asarray(p["recurrent_kernel"])).T
            ),
            "bias_ih_l0": t(_to("torch", kind, b_ih)),
            "bias_hh_l0": t(_to("torch", kind, b_hh)),
        }
    )
    state = (
        tuple(t(c)[None] for c in carry) if kind == "lstm" else t(carry)[None]
    )
    with torch.no_grad():
        got = module(t(x)[:, None], state)[0][:, 0].numpy()
    assert_parity("gates-torch", got, _keras_step(cell, p, x, carry))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_equinox_entry_matches_its_cells(kind):
    eqx = pytest.importorskip("equinox")
    cell, p, x, carry = _case(kind)
    if kind == "lstm":
        module = eqx.nn.LSTMCell(D, H, key=jax.random.key(0))
        module = eqx.tree_at(
            lambda m: (m.weight_ih, m.weight_hh, m.bias),
            module,
            (
                _to("equinox", kind, p["kernel"]).T,
                _to("equinox", kind, p["recurrent_kernel"]).T,
                _to("equinox", kind, p["bias"]),
            ),
        )
    else:
        module = eqx.nn.GRUCell(D, H, key=jax.random.key(0))
        module = eqx.tree_at(
            lambda m: (m.weight_ih, m.weight_hh, m.bias, m.bias_n),
            module,
            (
                _to("equinox", kind, p["kernel"]).T,
                _to("equinox", kind, p["recurrent_kernel"]).T,
                _to("equinox", kind, _gru_gate_bias(p)),
                _gates.split(p["bias"][1], "keras", "gru")["h"],
            ),
        )
    new = jax.vmap(module)(x, carry)
    got = new[0] if kind == "lstm" else new
    assert_parity("gates-equinox", got, _keras_step(cell, p, x, carry))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_haiku_entry_matches_its_cores(kind):
    hk = pytest.importorskip("haiku")
    cell, p, x, carry = _case(kind, reset_after=False)
    if kind == "lstm":
        f = _gates.gate_order("keras", "lstm").gates.index("f")
        bias = p["bias"].at[f * H : (f + 1) * H].add(-1.0)  # sigmoid(z_f + 1)
        w = jnp.concatenate([p["kernel"], p["recurrent_kernel"]])
        params = {
            "lstm/linear": {
                "w": _to("haiku", kind, w),
                "b": _to("haiku", kind, bias),
            }
        }
        state = hk.LSTMState(*carry)
    else:
        # h' = (1 - z) h + z a: Haiku's update gate is Keras' negated.
        z = _gates.gate_order("keras", "gru").gates.index("z")
        sign = jnp.ones(3 * H).at[z * H : (z + 1) * H].set(-1)
        params = {
            "gru": {
                "w_i": _to("haiku", kind, p["kernel"] * sign),
                "w_h": _to("haiku", kind, p["recurrent_kernel"] * sign),
                "b": _to("haiku", kind, p["bias"] * sign),
            }
        }
        state = carry
    core = hk.without_apply_rng(
        hk.transform(
            lambda x, s: (hk.LSTM(H) if kind == "lstm" else hk.GRU(H))(x, s)
        )
    )
    got = core.apply(params, x, state)[0]
    assert_parity("gates-haiku", got, _keras_step(cell, p, x, carry))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_flax_nnx_entry_matches_its_fused_cells(kind):
    nnx = pytest.importorskip("flax.nnx")
    cell, p, x, carry = _case(kind)
    if kind == "lstm":
        module = nnx.OptimizedLSTMCell(D, H, rngs=nnx.Rngs(0))
        pure = {
            "dense_i": {"kernel": _to("flax_nnx", kind, p["kernel"])},
            "dense_h": {
                "kernel": _to("flax_nnx", kind, p["recurrent_kernel"]),
                "bias": _to("flax_nnx", kind, p["bias"]),
            },
        }
        state = carry[::-1]  # NNX's (c, h)
    else:
        p = _no_candidate_recurrent_bias(p)  # NNX's GRU has no b_hn
        module = nnx.GRUCell(D, H, rngs=nnx.Rngs(0))
        pure = {
            "dense_i": {
                "kernel": _to("flax_nnx", kind, p["kernel"]),
                "bias": _to("flax_nnx", kind, _gru_gate_bias(p)),
            },
            "dense_h": {
                "kernel": _to("flax_nnx", kind, p["recurrent_kernel"])
            },
        }
        state = carry
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    nnx.replace_by_pure_dict(params, pure)
    got = nnx.merge(graphdef, params, rest)(state, x)[1]
    assert_parity("gates-nnx", got, _keras_step(cell, p, x, carry))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_flax_linen_entry_names_its_per_gate_denses(kind):
    nn = pytest.importorskip("flax.linen")
    cell, p, x, carry = _case(kind)
    entry = _gates.gate_order("flax_linen", kind)
    # Keras letter -> linen letter, then each Dense gets its own block.
    letter = dict(zip(entry.gates, entry.names))
    kernels = _gates.split(p["kernel"], "keras", kind)
    recurrent = _gates.split(p["recurrent_kernel"], "keras", kind)
    variables = {}
    for gate in _gates.KERAS_GATES[kind]:
        variables["i" + letter[gate]] = {"kernel": kernels[gate]}
        variables["h" + letter[gate]] = {"kernel": recurrent[gate]}
    if kind == "lstm":
        module = nn.LSTMCell(H)
        for gate, bias in _gates.split(p["bias"], "keras", kind).items():
            variables["h" + letter[gate]]["bias"] = bias
        state = carry[::-1]  # linen's (c, h)
    else:
        module = nn.GRUCell(H)
        biases = _gates.split(_gru_gate_bias(p), "keras", kind)
        for gate, bias in biases.items():
            variables["i" + letter[gate]]["bias"] = bias
        variables["h" + letter["h"]]["bias"] = _gates.split(
            p["bias"][1], "keras", kind
        )["h"]
        state = carry
    assert set(module.init(jax.random.key(0), state, x)["params"]) == set(
        variables
    )
    got = module.apply({"params": variables}, state, x)[1]
    assert_parity("gates-linen", got, _keras_step(cell, p, x, carry))


def test_cudnn_entry_matches_jax_experimental_rnn_reference():
    from jax.experimental import rnn as jax_rnn

    cell, p, x, carry = _case("lstm")
    got = jax_rnn.lstm_ref(
        x[:, None],
        carry[0][None],
        carry[1][None],
        {0: _to("cudnn", "lstm", p["kernel"]).T},
        {0: _to("cudnn", "lstm", p["recurrent_kernel"]).T},
        {0: _to("cudnn", "lstm", p["bias"])},
        {0: jnp.zeros(4 * H)},
        jnp.full((B,), 1, jnp.int32),
        D,
        H,
        1,
        0.0,
        False,
    )[0][:, 0]
    assert_parity("gates-cudnn", got, _keras_step(cell, p, x, carry))
