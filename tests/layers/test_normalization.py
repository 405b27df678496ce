"""BatchNormalization and LayerNormalization against Keras."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from jaxrnn.layers import BatchNormalization, LayerNormalization
from keras_helpers import assert_parity, randomize_keras_weights


def _bn_params(theirs):
    gamma, beta, mean, variance = theirs.get_weights()
    return {"gamma": gamma, "beta": beta, "moving_mean": mean,
            "moving_variance": np.abs(variance) + 0.5}


@pytest.mark.parametrize("masked", [False, True])
def test_batch_norm_training_matches_keras(masked, request):
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((4, 5, 6)) + 1).astype("float32")
    mask = np.ones((4, 5), bool)
    if masked:
        mask[1, 3:] = mask[2, 1:] = False
    theirs = keras.layers.BatchNormalization()
    theirs(x)
    randomize_keras_weights(theirs)
    params = _bn_params(theirs)
    theirs.set_weights([params[k] for k in
                        ("gamma", "beta", "moving_mean", "moving_variance")])
    ours = BatchNormalization()
    y, moved = ours.apply(params, jnp.asarray(x), training=True,
                          mask=jnp.asarray(mask) if masked else None)
    want = theirs(x, training=True, mask=mask if masked else None)
    assert_parity(request.node.name, y, want)
    assert_parity(request.node.name, [moved["moving_mean"], moved["moving_variance"]],
                  [theirs.moving_mean.value, theirs.moving_variance.value])


def test_batch_norm_inference_matches_keras(request):
    x = np.random.default_rng(1).standard_normal((3, 6)).astype("float32")
    theirs = keras.layers.BatchNormalization()
    theirs(x)
    randomize_keras_weights(theirs)
    params = _bn_params(theirs)
    theirs.set_weights([params[k] for k in
                        ("gamma", "beta", "moving_mean", "moving_variance")])
    ours = BatchNormalization()
    y, same = ours.apply(params, jnp.asarray(x))
    assert same is params
    assert_parity(request.node.name, y, theirs(x, training=False))
    assert ours.param_count((None, 6)) == theirs.count_params()


def test_batch_norm_statistics_get_no_gradient(key):
    bn = BatchNormalization()
    params = bn.init(key, (None, 3))
    x = jax.random.normal(key, (8, 3))
    grads = jax.grad(lambda p: jnp.sum(bn.apply(p, x, training=True)[1]["moving_mean"]
                                       * 0 + bn(p, x, training=True) ** 2))(params)
    assert float(jnp.abs(grads["gamma"]).sum()) > 0


def test_batch_norm_mask_shape_checked(key):
    bn = BatchNormalization()
    with pytest.raises(ValueError, match="mask"):
        bn(bn.init(key, (None, 3)), jnp.ones((2, 4, 3)), training=True,
           mask=jnp.ones((2, 3), bool))


def test_layer_norm_matches_keras(request):
    x = np.random.default_rng(2).standard_normal((2, 4, 6)).astype("float32")
    theirs = keras.layers.LayerNormalization()
    theirs(x)
    randomize_keras_weights(theirs)
    gamma, beta = theirs.get_weights()
    ours = LayerNormalization()
    assert_parity(request.node.name,
                  ours({"gamma": gamma, "beta": beta}, jnp.asarray(x)), theirs(x))
    assert ours.param_count((None, 4, 6)) == theirs.count_params()
