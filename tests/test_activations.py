"""Activations: Keras' names mean what Keras computes."""

import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxrnn import activations


@pytest.mark.parametrize("name", activations.names())
def test_matches_keras(name):
    x = np.linspace(-4, 4, 41, dtype="float32").reshape(1, -1)
    ours = np.asarray(activations.get(name)(jnp.asarray(x)))
    theirs = np.asarray(keras.activations.get(name)(x))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_none_is_linear():
    x = jnp.arange(3.0)
    assert activations.get(None)(x) is x


def test_callable_passes_through():
    assert activations.get(jnp.sin) is jnp.sin


def test_unknown_name():
    with pytest.raises(ValueError, match="Unknown activation 'tanhh'"):
        activations.get("tanhh")


def test_wrong_type():
    with pytest.raises(TypeError, match="activation"):
        activations.get(3)
