"""UNet and classifier: shapes, zero initial output, label handling, translation of conditioning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf


@pytest.mark.slow  # in `make test-all`; the library pieces it composes have fast tests
def test_unet_shapes_zero_init_and_conditioning():
    model = jf.nn.UNet(channels=8, num_classes=10)
    params = jf.nn.init_unet(jax.random.key(0), model, (8, 8, 1), jnp.zeros((1,), jnp.int32))
    v = jf.nn.velocity_fn(model)
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
    out = v(params, 0.3, x, jnp.array([0, 1, 10]))
    assert out.shape == x.shape
    np.testing.assert_allclose(out, 0.0)  # zero-initialised output convolution
    # perturb the output layer: labels and time now change the prediction
    params = jax.tree_util.tree_map_with_path(
        lambda p, a: a + 0.05 * jax.random.normal(jax.random.key(len(str(p))), a.shape), params
    )
    a, b = v(params, 0.3, x, jnp.array([0, 0, 0])), v(params, 0.3, x, jnp.array([1, 1, 1]))
    assert not np.allclose(a, b)
    assert not np.allclose(a, v(params, 0.7, x, jnp.array([0, 0, 0])))
    # each sample is processed independently (GroupNorm, not BatchNorm)
    np.testing.assert_allclose(v(params, 0.3, x[:1], jnp.array([0]))[0], a[0], atol=1e-5)


def test_unet_errors():
    model = jf.nn.UNet(channels=8, num_classes=3)
    with pytest.raises(ValueError, match="labels must lie"):
        jf.nn.init_unet(jax.random.key(0), model, (8, 8, 1), jnp.array([7]))
    with pytest.raises(ValueError, match="divisible"):
        jf.nn.init_unet(jax.random.key(0), jf.nn.UNet(channels=8, channel_mult=(1, 2, 2)), (6, 6, 1))
    with pytest.raises(ValueError, match="images"):
        jf.nn.UNet(channels=8).init(jax.random.key(0), jnp.zeros((1,)), jnp.zeros((1, 64)))


def test_classifier_features():
    clf = jf.nn.ConvClassifier()
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    params = clf.init(jax.random.key(1), x)
    assert clf.apply(params, x).shape == (4, 10)
    assert clf.apply(params, x, method=jf.nn.ConvClassifier.features).shape == (4, 64)


def test_frechet_distance_closed_form_and_invariance():
    with jax.enable_x64(True):
        k1, k2 = jax.random.split(jax.random.key(0))
        a = jax.random.normal(k1, (5000, 3))
        b = 2.0 * jax.random.normal(k2, (5000, 3)) + 1.0
        fd = jf.metrics.frechet_distance(a, b)
        # N(0, I) vs N(1, 4I): |Δm|² + Σ (1 + 4 − 2·2) = 3 + 3
        np.testing.assert_allclose(fd, 6.0, rtol=0.05)
        q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(3), (3, 3)))
        np.testing.assert_allclose(jf.metrics.frechet_distance(a @ q, b @ q), fd, rtol=1e-8)
        np.testing.assert_allclose(jf.metrics.frechet_distance(a, a), 0.0, atol=1e-6)
