import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxflow.nn import MLPVelocity, init_mlp, sinusoidal_embedding, velocity_fn


def test_velocity_boundary_shapes_and_single_point(key):
    mod = MLPVelocity(out_dim=3)
    params = init_mlp(key, mod, 3)
    v = velocity_fn(mod)
    x = jax.random.normal(key, (5, 3))
    batched = v(params, 0.3, x)
    assert batched.shape == (5, 3)
    np.testing.assert_allclose(v(params, 0.3, x[2]), batched[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v(params, jnp.full((5,), 0.3), x), batched, rtol=1e-6)


def test_conditioning_changes_output(key):
    mod = MLPVelocity(out_dim=2, num_classes=3)
    params = init_mlp(key, mod, 2, jnp.zeros((1,), jnp.int32))
    v = velocity_fn(mod)
    x = jax.random.normal(key, (4, 2))
    a = v(params, 0.5, x, jnp.zeros(4, jnp.int32))
    b = v(params, 0.5, x, jnp.ones(4, jnp.int32))
    assert float(jnp.abs(a - b).max()) > 1e-4


def test_sinusoidal_embedding_values():
    t = jnp.array([0.0, 0.25])
    e = sinusoidal_embedding(t, 4)
    np.testing.assert_allclose(e[0], [1, 1, 0, 0], atol=1e-7)
    np.testing.assert_allclose(e[1, 0], np.cos(250.0), atol=1e-4)
    np.testing.assert_allclose(e[1, 1], np.cos(250.0 * 0.01), atol=1e-5)  # freq 10000^(-1/2)


def test_bad_options(key):
    with pytest.raises(ValueError, match="unknown activation"):
        init_mlp(key, MLPVelocity(out_dim=2, activation="swish9"), 2)
    with pytest.raises(ValueError, match="time_embedding"):
        init_mlp(key, MLPVelocity(out_dim=2, time_embedding="fourier"), 2)
