"""from_xlstm / to_xlstm: both directions for the sLSTM (both of xlstm's
backends' layouts) and the mLSTM, and what they refuse. Slow: xlstm is
installed by CI's thorough pass only (without its dependencies). The
numbers of the converted modules are tests/cells/test_slstm.py's and
test_mlstm.py's."""

import importlib.util

import jax
import numpy as np
import pytest
from keras_helpers import assert_parity, perturb
from properties import THOROUGH

from jaxrnn import LSTMCell, MLSTMCell, SLSTMCell, rnn
from jaxrnn.interop import from_xlstm, to_xlstm

pytestmark = pytest.mark.slow

B, T, D, H, NH = 2, 7, 5, 8, 2


@pytest.fixture(autouse=True)
def _xlstm():
    if importlib.util.find_spec("xlstm") is None and not THOROUGH:
        pytest.skip("xlstm is installed by CI's thorough pass")


def _leaves(params):
    return [params[k] for k in sorted(params)]


@pytest.mark.parametrize("backend", ["vanilla", "cuda"])
def test_slstm_round_trip(backend):
    """Either backend's module (the CUDA one built without its kernel)
    gives the same params back, though their state dicts differ."""
    cell = SLSTMCell(H, num_heads=NH)
    params = perturb(cell.init(jax.random.key(0), D))
    module, kernel = to_xlstm(cell, params, backend=backend)
    assert tuple(kernel.shape) == (D, 4 * H)
    back_cell, back = from_xlstm(module, kernel.requires_grad_(True))
    assert back_cell == cell
    assert_parity("sLSTM to/from xlstm", _leaves(back), _leaves(params), 0)


def test_slstm_backends_store_different_layouts():
    cell = SLSTMCell(H, num_heads=NH)
    params = perturb(cell.init(jax.random.key(0), D))
    vanilla, _ = to_xlstm(cell, params)
    cuda, _ = to_xlstm(cell, params, backend="cuda")
    v, c = vanilla.state_dict(), cuda.state_dict()
    assert v["_recurrent_kernel_"].shape != c["_recurrent_kernel_"].shape
    assert v["_bias_"].shape == c["_bias_"].shape
    assert not np.allclose(v["_bias_"].numpy(), c["_bias_"].numpy())


def test_mlstm_round_trip_and_outputs():
    import torch

    cell = MLSTMCell(H, num_heads=NH)
    params = perturb(cell.init(jax.random.key(0), D))
    module, projections = to_xlstm(cell, params, context_length=T)
    back_cell, back = from_xlstm(module, projections)
    assert back_cell == cell
    assert_parity("mLSTM to/from xlstm", _leaves(back), _leaves(params))
    xs = np.random.default_rng(0).standard_normal((B, T, D), np.float32)
    x = torch.tensor(xs)
    with torch.no_grad():
        theirs = module(*(x @ projections[name] for name in "qkv"))
    ours, _ = rnn(cell, params, xs)
    assert_parity("mLSTM to_xlstm outputs", ours, theirs.numpy(), 2e-5)


def test_refusals():
    from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig

    cell = SLSTMCell(H, num_heads=NH)
    params = cell.init(jax.random.key(0), D)
    module, kernel = to_xlstm(cell, params)
    with pytest.raises(ValueError, match=r"projections.*\(D, 32\)"):
        from_xlstm(module, kernel[:, :8])
    with pytest.raises(TypeError, match="sLSTMCell or mLSTMCell"):
        from_xlstm(object(), kernel)
    lstm = sLSTMCell(
        sLSTMCellConfig(
            hidden_size=H, num_heads=NH, backend="vanilla", function="lstm"
        )
    )
    with pytest.raises(ValueError, match="function='lstm'"):
        from_xlstm(lstm, kernel)
    with pytest.raises(ValueError, match="backend"):
        to_xlstm(cell, params, backend="triton")
    with pytest.raises(TypeError, match="SLSTMCell or MLSTMCell"):
        to_xlstm(LSTMCell(4), LSTMCell(4).init(jax.random.key(0), 3))
    mlstm = MLSTMCell(H, num_heads=NH)
    module, projections = to_xlstm(mlstm, mlstm.init(jax.random.key(0), D))
    with pytest.raises(ValueError, match="'q', 'k' and 'v'"):
        from_xlstm(module, {"q": projections["q"]})
