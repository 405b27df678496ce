"""jaxrnn: recurrent networks for JAX, the functional way, with Keras' meaning.

Cells are pure functions over explicit parameter pytrees; `rnn` runs a cell
over time with masks, reversal and an explicit carry; the layers mirror
Keras' ``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN`` and ``Bidirectional``.
"""

from jaxrnn._masking import lengths_to_mask, reset_carry
from jaxrnn._rnn import rnn
from jaxrnn.cells import (
    ConvLSTM1DCell,
    ConvLSTM2DCell,
    ConvLSTM3DCell,
    ConvLSTMCell,
    DropoutMasks,
    GRUCell,
    LRUCell,
    LSTMCell,
    MinGRUCell,
    MinLSTMCell,
    MLSTMCell,
    RGLRUCell,
    SimpleRNNCell,
    SLSTMCell,
    StackedCells,
)
from jaxrnn.layers import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    ConvLSTM1D,
    ConvLSTM2D,
    ConvLSTM3D,
    SimpleRNN,
)

__version__ = "0.2.0"

__all__ = [
    "Bidirectional",
    "ConvLSTM1D",
    "ConvLSTM1DCell",
    "ConvLSTM2D",
    "ConvLSTM2DCell",
    "ConvLSTM3D",
    "ConvLSTM3DCell",
    "ConvLSTMCell",
    "DropoutMasks",
    "GRU",
    "GRUCell",
    "LRUCell",
    "LSTM",
    "LSTMCell",
    "MLSTMCell",
    "MinGRUCell",
    "MinLSTMCell",
    "RGLRUCell",
    "RNN",
    "SLSTMCell",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedCells",
    "lengths_to_mask",
    "reset_carry",
    "rnn",
]
