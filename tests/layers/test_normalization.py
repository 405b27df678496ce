"""BatchNormalization and LayerNormalization against Keras."""

import dataclasses
import math
import warnings

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from keras_helpers import assert_parity, randomize_keras_weights

from jaxrnn.layers import (
    BatchNormalization,
    Dense,
    LayerNormalization,
    Sequential,
    summary,
)

_POSITIVE = ("moving_variance", "moving_stddev", "renorm_stddev")


def _keras_bn(x, **kwargs):
    """A built Keras BatchNormalization with random weights (positive
    variances and stddevs) and our params with the same values, named from
    Keras' own weight paths."""
    theirs = keras.layers.BatchNormalization(**kwargs)
    theirs.build(x.shape)
    randomize_keras_weights(theirs)
    names = [w.path.split("/")[-1] for w in theirs.weights]
    weights = [
        np.abs(w) + 0.5 if name in _POSITIVE else w
        for name, w in zip(names, theirs.get_weights())
    ]
    theirs.set_weights(weights)
    return theirs, dict(zip(names, weights))


def _keras_stats(theirs):
    return {
        w.path.split("/")[-1]: np.asarray(w.value)
        for w in theirs.non_trainable_weights
    }


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (3 * rng.standard_normal(shape) + 1).astype("float32")


@pytest.mark.parametrize("masked", [False, True])
def test_batch_norm_training_matches_keras(masked, request):
    x = _data((4, 5, 6))
    mask = np.ones((4, 5), bool)
    if masked:
        mask[1, 3:] = mask[2, 1:] = False
    theirs, params = _keras_bn(x)
    ours = BatchNormalization()
    y, moved = ours.apply(
        params,
        jnp.asarray(x),
        training=True,
        mask=jnp.asarray(mask) if masked else None,
    )
    want = theirs(x, training=True, mask=mask if masked else None)
    assert_parity(request.node.name, y, want)
    assert_parity(
        request.node.name,
        [moved["moving_mean"], moved["moving_variance"]],
        [theirs.moving_mean.value, theirs.moving_variance.value],
    )


def test_batch_norm_inference_matches_keras(request):
    x = np.random.default_rng(1).standard_normal((3, 6)).astype("float32")
    theirs, params = _keras_bn(x)
    ours = BatchNormalization()
    y, same = ours.apply(params, jnp.asarray(x))
    assert same is params
    assert_parity(request.node.name, y, theirs(x, training=False))
    assert ours.param_count((None, 6)) == theirs.count_params()


_AXES = [
    ((4, 3, 5), -1),
    ((4, 3, 5), 1),
    ((2, 3, 4, 5), 1),
    ((2, 3, 4, 5), -2),
    ((6, 3), 0),
]


@pytest.mark.parametrize("shape,axis", _AXES)
@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_axis_matches_keras(shape, axis, training, request):
    x = _data(shape, seed=len(shape) + axis)
    theirs, params = _keras_bn(x, axis=axis, momentum=0.9)
    ours = BatchNormalization(axis=axis, momentum=0.9)
    assert jax.tree.map(
        np.shape, ours.init(jax.random.key(0), shape)
    ) == jax.tree.map(np.shape, params)
    y, moved = ours.apply(params, jnp.asarray(x), training=training)
    assert_parity(request.node.name, y, theirs(x, training=training))
    assert_parity(
        request.node.name,
        [moved[k] for k in _keras_stats(theirs)],
        list(_keras_stats(theirs).values()),
    )


@pytest.mark.parametrize(
    "shape,axis,mask_shape",
    [
        ((1, 2, 3, 4), -1, (1, 2, 1)),
        ((3, 4, 2, 5), -1, (3, 4, 2)),
        ((3, 4, 5), 1, (3, 4)),
        ((3, 4, 2, 5), 2, (1, 4, 2)),
    ],
)
def test_batch_norm_broadcast_mask_matches_keras(
    shape, axis, mask_shape, request
):
    x = _data(shape, seed=7)
    mask = np.random.default_rng(8).random(mask_shape) > 0.3
    mask.flat[0] = True
    theirs, params = _keras_bn(x, axis=axis)
    ours = BatchNormalization(axis=axis)
    y, moved = ours.apply(
        params, jnp.asarray(x), training=True, mask=jnp.asarray(mask)
    )
    assert_parity(request.node.name, y, theirs(x, training=True, mask=mask))
    assert_parity(
        request.node.name,
        [moved[k] for k in _keras_stats(theirs)],
        list(_keras_stats(theirs).values()),
    )


def test_batch_norm_mask_ignores_nan_padding(request):
    """Keras selects with `where`, so NaN at masked entries stays out."""
    x = _data((3, 4, 2))
    mask = np.ones((3, 4), bool)
    mask[0, 2:] = False
    x[0, 2:] = np.nan
    theirs, params = _keras_bn(x)
    y, moved = BatchNormalization().apply(
        params, jnp.asarray(x), training=True, mask=jnp.asarray(mask)
    )
    assert np.isfinite(np.asarray(moved["moving_mean"])).all()
    assert_parity(
        request.node.name,
        np.asarray(y)[mask],
        np.asarray(theirs(x, training=True, mask=mask))[mask],
    )


_RENORM = [
    dict(),
    dict(renorm_clipping={"rmax": 1.2, "rmin": 0.8, "dmax": 0.1}),
    dict(renorm_clipping={"dmax": 0.0}, renorm_momentum=0.5),
    dict(renorm_clipping={"rmin": 1.0}, momentum=0.8, center=False),
    dict(renorm_momentum=0.7, scale=False, axis=1),
    dict(renorm_momentum=0.9, scale=False, center=False),
]


@pytest.mark.parametrize(
    "kwargs",
    _RENORM,
    ids=lambda k: ",".join(f"{n}={v}" for n, v in k.items()) or "default",
)
def test_batch_renorm_matches_keras_over_steps(kwargs, request):
    xs = [_data((5, 3, 4), seed=s) * (s + 1) for s in range(3)]
    theirs, params = _keras_bn(xs[0], renorm=True, **kwargs)
    ours = BatchNormalization(renorm=True, **kwargs)
    step = jax.jit(lambda p, x: ours.apply(p, x, training=True))
    for x in xs:
        y, params = step(params, jnp.asarray(x))
        assert_parity(request.node.name, y, theirs(x, training=True))
        assert_parity(
            request.node.name,
            [params[k] for k in _keras_stats(theirs)],
            list(_keras_stats(theirs).values()),
        )
    assert_parity(
        request.node.name,
        ours(params, jnp.asarray(xs[0])),
        theirs(xs[0], training=False),
    )


def test_batch_renorm_gradients_match_keras(request):
    """r and d carry no gradient, in Keras as here."""
    x = _data((6, 4), seed=3)
    kwargs = dict(renorm=True, renorm_clipping={"rmax": 1.5, "dmax": 0.5})
    theirs, params = _keras_bn(x, **kwargs)
    ours = BatchNormalization(**kwargs)
    weights = jnp.asarray(
        np.random.default_rng(5).standard_normal(x.shape), jnp.float32
    )
    trainable = [jnp.asarray(v.value) for v in theirs.trainable_variables]
    frozen = [jnp.asarray(v.value) for v in theirs.non_trainable_variables]

    def their_loss(trainable, x):
        y, _ = theirs.stateless_call(trainable, frozen, x, training=True)
        return jnp.sum(y * weights)

    def our_loss(gamma_beta, x):
        p = dict(params, gamma=gamma_beta[0], beta=gamma_beta[1])
        return jnp.sum(ours(p, x, training=True) * weights)

    want = jax.grad(their_loss, argnums=(0, 1))(trainable, jnp.asarray(x))
    got = jax.grad(our_loss, argnums=(0, 1))(
        [jnp.asarray(params["gamma"]), jnp.asarray(params["beta"])],
        jnp.asarray(x),
    )
    assert_parity(request.node.name, got, want)


def test_batch_renorm_params_follow_keras_weights():
    layer = BatchNormalization(renorm=True)
    theirs = keras.layers.BatchNormalization(renorm=True)
    theirs.build((None, 3))
    params = layer.init(jax.random.key(0), (None, 3))
    assert list(params) == [w.path.split("/")[-1] for w in theirs.weights]
    for name, value in zip(params, theirs.get_weights()):
        np.testing.assert_array_equal(params[name], value)
    model = Sequential([layer])
    mask = model.trainable_mask([params])[0]
    assert [k for k, trainable in mask.items() if trainable] == [
        w.path.split("/")[-1] for w in theirs.trainable_weights
    ]
    text = summary(model, (None, 3), print_fn=None)
    assert f"Non-trainable params: {5 * 3}" in text
    assert layer.param_count((None, 3)) == theirs.count_params()


def test_batch_norm_initializers_match_keras():
    kwargs = dict(
        beta_initializer="ones",
        gamma_initializer="zeros",
        moving_mean_initializer="ones",
        moving_variance_initializer="zeros",
    )
    theirs = keras.layers.BatchNormalization(**kwargs)
    theirs.build((None, 2, 4))
    params = BatchNormalization(**kwargs).init(jax.random.key(0), (None, 2, 4))
    for name, value in zip(params, theirs.get_weights()):
        np.testing.assert_array_equal(params[name], value)


def test_batch_renorm_layer_is_a_static_jit_argument():
    clipped = BatchNormalization(renorm=True, renorm_clipping={"rmax": 2.0})
    same = BatchNormalization(renorm=True, renorm_clipping={"rmax": 2.0})
    assert clipped == same and hash(clipped) == hash(same)
    assert clipped != BatchNormalization(
        renorm=True, renorm_clipping={"rmax": 3.0}
    )
    assert dataclasses.replace(clipped) == clipped
    with pytest.raises(TypeError):
        clipped.renorm_clipping["rmax"] = 1.0  # read-only, so jit caches hold
    run = jax.jit(
        lambda layer, p, x: layer(p, x, training=True), static_argnums=0
    )
    params = clipped.init(jax.random.key(0), (None, 3))
    assert run(clipped, params, jnp.ones((2, 3))).shape == (2, 3)


def test_sequential_apply_moves_renorm_statistics(key):
    model = Sequential([Dense(4), BatchNormalization(renorm=True), Dense(2)])
    params = model.init(key, (None, 5, 3))
    x = jax.random.normal(key, (2, 5, 3))
    _, moved = model.apply(params, x, training=True)
    for name in (
        "moving_mean",
        "moving_stddev",
        "renorm_mean",
        "renorm_stddev",
    ):
        assert not np.allclose(moved[1][name], params[1][name]), name
    np.testing.assert_allclose(
        moved[1]["moving_variance"],
        np.maximum(np.square(moved[1]["moving_stddev"]) - 1e-3, 0),
        rtol=1e-6,
    )


def test_batch_norm_statistics_get_no_gradient(key):
    bn = BatchNormalization()
    params = bn.init(key, (None, 3))
    x = jax.random.normal(key, (8, 3))
    grads = jax.grad(
        lambda p: jnp.sum(
            bn.apply(p, x, training=True)[1]["moving_mean"] * 0
            + bn(p, x, training=True) ** 2
        )
    )(params)
    assert float(jnp.abs(grads["gamma"]).sum()) > 0


def test_batch_norm_mask_shape_checked(key):
    bn = BatchNormalization()
    with pytest.raises(ValueError, match=r"mask.*broadcast.*\(2, 4\)"):
        bn(
            bn.init(key, (None, 3)),
            jnp.ones((2, 4, 3)),
            training=True,
            mask=jnp.ones((2, 3), bool),
        )


def test_batch_norm_mask_rank_checked(key):
    """Keras: 'The mask provided should be one dimension less than the
    inputs'."""
    bn = BatchNormalization()
    with pytest.raises(ValueError, match="mask.*one axis fewer"):
        bn(
            bn.init(key, (None, 3)),
            jnp.ones((2, 4, 3)),
            mask=jnp.ones((2, 4, 3), bool),
        )


@pytest.mark.parametrize("axis", [[-1], (1,), 1.0, True])
def test_batch_norm_axis_is_one_int(axis):
    with pytest.raises(TypeError, match="one axis.*`axis` must be an int"):
        BatchNormalization(axis=axis)


def test_batch_norm_axis_out_of_range(key):
    bn = BatchNormalization(axis=3)
    with pytest.raises(ValueError, match=r"`axis` 3 is out of range.*rank 3"):
        bn.init(key, (None, 4, 5))
    with pytest.raises(ValueError, match="out of range"):
        bn.output_shape((None, 4, 5))
    params = bn.init(key, (2, 3, 4, 5))
    with pytest.raises(ValueError, match="out of range"):
        bn(params, jnp.ones((3, 4, 5)))


def test_batch_norm_params_must_fit(key):
    bn = BatchNormalization(axis=1)
    params = bn.init(key, (None, 4, 5))
    with pytest.raises(
        ValueError, match=r"params\['gamma'\] must have shape \(5,\)"
    ):
        bn(params, jnp.ones((2, 5, 4)))
    renorm = BatchNormalization(axis=1, renorm=True)
    with pytest.raises(ValueError, match="must have keys.*renorm_mean"):
        renorm(params, jnp.ones((2, 4, 5)))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (
            dict(renorm_clipping={"rmax": 2.0}),
            ValueError,
            "renorm_clipping.*renorm=True only",
        ),
        (
            dict(renorm_momentum=0.9),
            ValueError,
            "renorm_momentum.*renorm=True only",
        ),
        (
            dict(renorm=True, renorm_clipping=[("rmax", 2.0)]),
            TypeError,
            "renorm_clipping.*dict",
        ),
        (
            dict(renorm=True, renorm_clipping={"rmax": "2"}),
            TypeError,
            r"renorm_clipping\['rmax'\].*float",
        ),
        (
            dict(renorm=True, renorm_momentum=1.0),
            ValueError,
            "renorm_momentum",
        ),
        (dict(renorm=1), TypeError, "`renorm` must be a bool"),
        (dict(epsilon=-1e-3), ValueError, "epsilon"),
        (dict(moving_variance_initializer="nope"), ValueError, "nope"),
    ],
)
def test_batch_norm_arguments_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(**kwargs)


def test_layer_norm_matches_keras(request):
    x = np.random.default_rng(2).standard_normal((2, 4, 6)).astype("float32")
    theirs = keras.layers.LayerNormalization()
    theirs(x)
    randomize_keras_weights(theirs)
    gamma, beta = theirs.get_weights()
    ours = LayerNormalization()
    assert_parity(
        request.node.name,
        ours({"gamma": gamma, "beta": beta}, jnp.asarray(x)),
        theirs(x),
    )
    assert ours.param_count((None, 4, 6)) == theirs.count_params()


_LN_CASES = [
    (-1, {}),
    (1, {}),
    ((1, 2), dict(center=False)),
    ([-2, -1], dict(scale=False)),
    ((0, 2), {}),
    (-1, dict(rms_scaling=True)),
    ([0, 1, 2, 3], dict(rms_scaling=True)),
    ((-3, -1), dict(rms_scaling=True)),
    ((1, 2), dict(rms_scaling=True, center=False, scale=False)),
]


@pytest.mark.parametrize("axis,kwargs", _LN_CASES)
def test_layer_norm_axis_and_rms_scaling_match_keras(axis, kwargs, request):
    x = (
        2 * np.random.default_rng(6).standard_normal((2, 3, 4, 5)) + 1
    ).astype("float32")
    with warnings.catch_warnings():  # Keras deprecates rms_scaling
        warnings.simplefilter("ignore")
        theirs = keras.layers.LayerNormalization(axis=axis, **kwargs)
    theirs.build(x.shape)
    randomize_keras_weights(theirs)
    names = [w.path.split("/")[-1] for w in theirs.weights]
    params = dict(zip(names, theirs.get_weights()))
    ours = LayerNormalization(axis=axis, **kwargs)
    assert jax.tree.map(
        np.shape, ours.init(jax.random.key(0), x.shape)
    ) == jax.tree.map(np.shape, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = theirs(x)
    assert_parity(request.node.name, ours(params, jnp.asarray(x)), want)


def test_layer_norm_half_precision_computes_in_float32(request):
    x = np.random.default_rng(9).standard_normal((3, 8)).astype("float32")
    ours = LayerNormalization()
    params = ours.init(jax.random.key(0), x.shape)
    y = ours(params, jnp.asarray(x, jnp.bfloat16))
    assert y.dtype == jnp.bfloat16
    want = ours(params, jnp.asarray(x, jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_array_equal(y, want.astype(jnp.bfloat16))


@pytest.mark.parametrize(
    "axis,error,match",
    [
        ({"axis": -1}, TypeError, "int or a non-empty list/tuple of ints"),
        ([], TypeError, "non-empty"),
        ([1, 1.5], TypeError, "list/tuple of ints"),
    ],
)
def test_layer_norm_axis_type_checked(axis, error, match):
    with pytest.raises(error, match=match):
        LayerNormalization(axis=axis)


@pytest.mark.parametrize(
    "axis,match",
    [
        ((1, -1), r"mixes negative.*\(1, 2\)"),
        ((1, -2), "names an axis twice"),
        ((-4,), "out of range"),
    ],
)
def test_layer_norm_axis_checked_against_the_rank(axis, match, key):
    ours = LayerNormalization(axis=axis)
    with pytest.raises(ValueError, match=match):
        ours.init(key, (None, 4, 5))
    with pytest.raises(ValueError, match=match):
        ours({}, jnp.ones((2, 4, 5)))


def test_layer_norm_params_must_fit(key):
    ours = LayerNormalization(axis=(1, 2))
    params = ours.init(key, (None, 4, 5))
    with pytest.raises(
        ValueError, match=r"params\['gamma'\] must have shape \(5, 4\)"
    ):
        ours(params, jnp.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"must have keys \['gamma'\]"):
        LayerNormalization(rms_scaling=True)(params, jnp.ones((2, 4, 5)))
    assert math.prod(params["gamma"].shape) == 20
