"""Keras-shaped layers: ``init(key, input_shape) -> params`` and a pure call."""

from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.recurrent import GRU, LSTM, RNN, SimpleRNN, count_params

__all__ = ["Bidirectional", "GRU", "LSTM", "RNN", "SimpleRNN", "count_params"]
