"""Shared test set-up: strict dtype promotion, Keras on JAX, fresh keys."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import itertools

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")

_counter = itertools.count()


@pytest.fixture
def key():
    """A fresh PRNG key per use, distinct across the session."""
    return jax.random.key(next(_counter))


@pytest.fixture
def keys():
    """A factory of distinct PRNG keys: ``keys(3)`` -> list of 3 keys."""
    def make(n):
        return list(jax.random.split(jax.random.key(1000 + next(_counter)), n))
    return make
