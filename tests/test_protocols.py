"""jaxrnn.protocols: the tiers each built-in cell takes, and the errors for
a cell that implements part of a tier."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_registry import BY_NAME, names

import jaxrnn
from jaxrnn.protocols import (
    Cell,
    StackableCell,
    has_projected_step,
    has_split_step,
    supports_parallel,
)


@pytest.mark.parametrize("name", names(convolutional=None))
def test_built_in_cells_take_their_tiers(name):
    entry = BY_NAME[name]
    cell = entry.make(3)
    projected, split, parallel = entry.projected, entry.split, entry.parallel
    assert isinstance(cell, Cell)
    assert isinstance(cell, StackableCell)
    assert has_projected_step(cell) is projected
    assert has_split_step(cell) is split
    assert supports_parallel(cell) is parallel


@dataclasses.dataclass(frozen=True)
class _Plain:
    units: int = 3

    @property
    def output_size(self):
        return self.units

    def init(self, key, input_dim):
        return {
            "kernel": jax.random.normal(key, (input_dim, self.units)),
            "recurrent_kernel": jnp.eye(self.units) * 0.5,
        }

    def initial_carry(self, batch_shape=(), dtype=None):
        return jnp.zeros((*batch_shape, self.units), dtype or jnp.float32)

    def __call__(self, params, carry, x, *, key=None, training=False):
        h = jnp.tanh(x @ params["kernel"] + carry @ params["recurrent_kernel"])
        return h, h


@dataclasses.dataclass(frozen=True)
class _Projected(_Plain):
    """The projected step without `dropout_masks`: optional."""

    def project_inputs(self, params, xs, dropout=None):
        return xs @ params["kernel"]

    def step_projected(self, params, carry, projected, dropout=None):
        h = jnp.tanh(projected + carry @ params["recurrent_kernel"])
        return h, h


@dataclasses.dataclass(frozen=True)
class _HalfProjected(_Plain):
    def project_inputs(self, params, xs, dropout=None):
        return xs @ params["kernel"]


@dataclasses.dataclass(frozen=True)
class _MisspeltSplit(_Projected):
    """`apply_gate` for `apply_gates`: used to run the slow path silently."""

    def recurrent_input(self, carry, dropout, dtype):
        return carry.astype(dtype)

    def project_recurrent(self, params, h_in):
        return h_in @ params["recurrent_kernel"]

    def apply_gate(self, carry, projected, recurrent):
        h = jnp.tanh(projected + recurrent)
        return h, h


@dataclasses.dataclass(frozen=True)
class _SplitOptedOut(_MisspeltSplit):
    split_step = False


def _run(cell):
    params = cell.init(jax.random.key(0), 2)
    x = jax.random.normal(jax.random.key(1), (2, 5, 2))
    return jaxrnn.rnn(cell, params, x)


def test_projected_step_without_dropout_masks_matches_the_plain_step():
    plain, projected = _Plain(), _Projected()
    assert not has_projected_step(plain) and has_projected_step(projected)
    (ys_plain, h_plain), (ys, h) = _run(plain), _run(projected)
    np.testing.assert_allclose(ys, ys_plain, atol=1e-6)
    np.testing.assert_allclose(h, h_plain, atol=1e-6)


def test_part_of_the_projected_step_is_refused_by_name():
    with pytest.raises(
        TypeError,
        match=r"_HalfProjected has project_inputs "
        r"but not step_projected: the projected step",
    ):
        _run(_HalfProjected())


def test_a_misspelt_split_step_method_is_refused_by_name():
    with pytest.raises(
        TypeError,
        match=r"has recurrent_input, "
        r"project_recurrent but not apply_gates",
    ):
        _run(_MisspeltSplit())


def test_split_step_false_opts_out_of_the_check():
    cell = _SplitOptedOut()
    assert not has_split_step(cell)
    ys, _ = _run(cell)
    np.testing.assert_allclose(ys, _run(_Plain())[0], atol=1e-6)


def test_split_step_without_the_projected_step_is_refused():
    @dataclasses.dataclass(frozen=True)
    class SplitOnly(_Plain):
        def recurrent_input(self, carry, dropout, dtype):
            return carry

        def project_recurrent(self, params, h_in):
            return h_in

        def apply_gates(self, carry, projected, recurrent):
            return carry, carry

    with pytest.raises(TypeError, match="builds on"):
        has_split_step(SplitOnly())
