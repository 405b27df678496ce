"""jaxrnn: recurrent networks for JAX, the functional way, with Keras' meaning.

Cells are pure functions over explicit parameter pytrees; `rnn` runs a cell
over time with masks, reversal and an explicit carry; the layers mirror
Keras' ``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN`` and ``Bidirectional``.
"""

from jaxrnn._masking import lengths_to_mask, reset_carry
from jaxrnn._rnn import rnn
from jaxrnn.cells import (DropoutMasks, GRUCell, LSTMCell, SimpleRNNCell,
                          StackedCells)
from jaxrnn.layers import GRU, LSTM, RNN, Bidirectional, SimpleRNN

__version__ = "0.1.0"

__all__ = [
    "Bidirectional",
    "DropoutMasks",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedCells",
    "lengths_to_mask",
    "reset_carry",
    "rnn",
]
