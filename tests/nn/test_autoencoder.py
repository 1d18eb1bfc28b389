"""The convolutional autoencoder: beats PCA at the same latent size on held-out digits; its KL term is the KL."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxflow as jf
from jaxflow.train import TrainState, fit, make_train_step


@pytest.fixture(scope="module")
def digits():
    return jf.data.train_test_split(jax.random.key(0), jf.data.load_digits(), 0.2)


@pytest.mark.slow
def test_autoencoder_beats_pca_with_the_same_latent_size(digits):
    train, test = digits
    ae = jf.nn.ConvAutoencoder(latent_channels=1)
    params = jf.nn.init_autoencoder(jax.random.key(1), ae)
    opt = optax.adam(2e-3)
    state = TrainState.create(jax.random.key(2), params, opt)
    source = jf.train.ArraySource(jax.random.key(3), {"x1": np.asarray(train.images)}, 128)
    state, _ = fit(
        state,
        make_train_step(jf.nn.autoencoder_loss(ae), opt, unroll=True),
        300,
        steps_per_call=10,
        batches_fn=source,
        progress=False,
    )
    enc, dec = jf.nn.encoder_fn(ae), jf.nn.decoder_fn(ae)
    z = enc(state.params, test.images)
    assert z.shape == (test.images.shape[0], 16)
    mse = float(jnp.mean((dec(state.params, z) - test.images) ** 2))
    x = np.asarray(train.images).reshape(len(train.images), -1)
    mean = x.mean(0)
    comps = np.linalg.svd(x - mean, full_matrices=False)[2][:16]
    y = np.asarray(test.images).reshape(len(test.images), -1)
    pca = float(np.mean(((y - mean) @ comps.T @ comps + mean - y) ** 2))
    assert mse < 0.85 * pca, (mse, pca)


def test_kl_term_matches_a_monte_carlo_estimate(digits):
    ae = jf.nn.ConvAutoencoder(latent_channels=1, variational=True)
    params = jf.nn.init_autoencoder(jax.random.key(4), ae)
    x = digits[1].images[:4]
    _, _, kl = ae.apply(params, x, jax.random.key(5))
    mean, logvar = ae.apply(params, x, method=lambda m, xx: m._stats(xx))
    std = jnp.exp(0.5 * logvar)
    eps = jax.random.normal(jax.random.key(6), (20000, *mean.shape))
    z = mean + std * eps
    log_q = jnp.sum(-0.5 * eps**2 - jnp.log(std), axis=-1)
    log_p = jnp.sum(-0.5 * z**2, axis=-1)
    np.testing.assert_allclose(kl, jnp.mean(log_q - log_p, axis=0), rtol=0.05, atol=0.05)


def test_bad_shapes_raise():
    ae = jf.nn.ConvAutoencoder()
    params = jf.nn.init_autoencoder(jax.random.key(0), ae)
    with pytest.raises(ValueError, match="images must be"):
        jf.nn.encoder_fn(ae)(params, jnp.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="latents must be"):
        jf.nn.decoder_fn(ae)(params, jnp.zeros((2, 15)))
    with pytest.raises(ValueError, match="beta"):
        jf.nn.autoencoder_loss(ae, beta=-1.0)
