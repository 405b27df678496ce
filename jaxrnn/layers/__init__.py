"""Keras-shaped layers: ``init(key, input_shape) -> params`` and a pure call."""

from jaxrnn.layers._common import count_params
from jaxrnn.layers._sequential_summary import summary
from jaxrnn.layers.batch_normalization import BatchNormalization
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from jaxrnn.layers.convolutional import Conv1D
from jaxrnn.layers.core import Dense, Embedding
from jaxrnn.layers.dropout import Dropout
from jaxrnn.layers.griffin import GriffinBlock
from jaxrnn.layers.layer_normalization import LayerNormalization
from jaxrnn.layers.masking import Masking
from jaxrnn.layers.pooling import (
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from jaxrnn.layers.recurrent import GRU, LSTM, SimpleRNN
from jaxrnn.layers.rnn import RNN
from jaxrnn.layers.sequential import Sequential
from jaxrnn.layers.time_distributed import TimeDistributed

__all__ = [
    "BatchNormalization",
    "Bidirectional",
    "Conv1D",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "Dense",
    "Dropout",
    "Embedding",
    "GRU",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "GriffinBlock",
    "LSTM",
    "LayerNormalization",
    "Masking",
    "MaxPooling1D",
    "RNN",
    "Sequential",
    "SimpleRNN",
    "TimeDistributed",
    "count_params",
    "summary",
]
