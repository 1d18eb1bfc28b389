"""The shapes study's amortized training step orders its two updates as declared: the amortizer first (alternating,
the default, as the authors' code does) or both from the same parameters (simultaneous)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import shapes
from jaxflow import shapes as S
from jaxflow.ot.sliced import projected_wasserstein


@pytest.mark.parametrize("alternate", [True, False])
def test_amortized_max_sw_step_orders_its_updates(alternate):
    amortizer_lr = 0.5
    cfg = shapes.ShapesConfig(cloud_points=32)
    ae, amort = S.PointCloudAutoencoder(points=32), S.SliceAmortizer(features=16, heads=2)
    batch = jax.random.normal(jax.random.key(0), (4, 32, 3)) * jnp.array([1.0, 0.5, 0.2])
    k_ae, k_am = jax.random.key(1), jax.random.key(2)
    params = {"ae": ae.init(k_ae, batch[0]), "amortizer": amort.init(k_am, batch[0], batch[0])}
    step, init = shapes.make_step("amortized Max-SW", cfg, ae, amort, alternate, optax.adam(amortizer_lr))
    new, _, _ = step(params, init(params), batch, jax.random.key(3))

    # Adam's first step moves every parameter by -lr · g / (|g| + eps) (bias-corrected moments m = g, v = g²)
    def adam_first(p, g, lr):
        return jax.tree.map(lambda p, g: p - lr * g / (jnp.abs(g) + 1e-8), p, g)

    recon = jax.vmap(lambda x: ae.apply(params["ae"], x))(batch)

    def ascent(p_am):  # the amortizer maximises the projected distance at its own direction
        th = jax.vmap(lambda x, y: amort.apply(p_am, x, y))(batch, recon)
        return -jnp.mean(jax.vmap(lambda t, x, y: projected_wasserstein(t[None], x, y, 2.0)[0])(th, batch, recon))

    p_am = adam_first(params["amortizer"], jax.grad(ascent)(params["amortizer"]), amortizer_lr)
    # alternating: the autoencoder steps at the updated amortizer's direction; simultaneous: at the old one
    theta = jax.vmap(lambda x, y: amort.apply(p_am if alternate else params["amortizer"], x, y))(batch, recon)

    def descent(p_ae):  # the autoencoder minimises it at that direction, held fixed
        r = jax.vmap(lambda x: ae.apply(p_ae, x))(batch)
        return jnp.mean(jax.vmap(lambda t, x, y: projected_wasserstein(t[None], x, y, 2.0)[0])(theta, batch, r))

    p_ae = adam_first(params["ae"], jax.grad(descent)(params["ae"]), 1e-3)
    # Adam's normalised step makes entries with near-zero gradients sensitive to float32 rounding: compare the
    # updates, entry by entry, and require nearly all to agree
    for got, want, lr in ((new["amortizer"], p_am, amortizer_lr), (new["ae"], p_ae, 1e-3)):
        a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(got)])
        b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(want)])
        assert np.mean(np.abs(a - b) < 0.05 * lr) > 0.99


def test_plain_losses_leave_the_amortizer_alone():
    cfg = shapes.ShapesConfig(cloud_points=16)
    ae, amort = S.PointCloudAutoencoder(points=16), S.SliceAmortizer(features=16, heads=2)
    batch = jax.random.normal(jax.random.key(0), (2, 16, 3))
    k_ae, k_am = jax.random.key(1), jax.random.key(2)
    params = {"ae": ae.init(k_ae, batch[0]), "amortizer": amort.init(k_am, batch[0], batch[0])}
    step, init = shapes.make_step("SW", cfg, ae, amort)
    new, _, value = step(params, init(params), batch, jax.random.key(3))
    assert np.isfinite(float(value))
    for a, b in zip(jax.tree.leaves(new["amortizer"]), jax.tree.leaves(params["amortizer"]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(new["ae"]), jax.tree.leaves(params["ae"]), strict=True)
    )


def test_unknown_update_order_is_refused():
    with pytest.raises(ValueError, match="--amortizer-updates"):
        shapes.validate(shapes.ShapesConfig(amortizer_updates="interleaved"))


def test_training_wires_the_configured_amortizer_and_its_adam():
    """The config's amortizer choice and Adam β reach the training: the linear amortizer's parameters for amortized
    Max-SW, and after more than one step (Adam's first step ignores β) a different amortizer for another β."""
    train = jax.random.normal(jax.random.key(0), (4, 16, 3)) * jnp.array([1.0, 0.5, 0.2])
    cfg = shapes.ShapesConfig(cloud_points=16, batch=2, epochs=2)
    _, lin, _ = shapes.train_autoencoder("amortized Max-SW", train, cfg, jax.random.key(1))
    assert set(lin["amortizer"]["params"]) == {"weight", "bias"}
    att_cfg = shapes.ShapesConfig(cloud_points=16, batch=2, epochs=2, max_sw_amortizer="attention")
    _, att, _ = shapes.train_autoencoder("amortized Max-SW", train, att_cfg, jax.random.key(1))
    assert "weight" not in att["amortizer"]["params"]
    momentum = shapes.ShapesConfig(cloud_points=16, batch=2, epochs=2, amortizer_betas=(0.9, 0.999))
    _, lin2, _ = shapes.train_autoencoder("amortized Max-SW", train, momentum, jax.random.key(1))
    w1, w2 = np.asarray(lin["amortizer"]["params"]["weight"]), np.asarray(lin2["amortizer"]["params"]["weight"])
    assert np.max(np.abs(w1 - w2)) > 1e-4


def test_bad_amortizer_settings_are_refused():
    with pytest.raises(ValueError, match="--amortizer-betas"):
        shapes.validate(shapes.ShapesConfig(amortizer_betas=(0.0, 1.0)))
    with pytest.raises(ValueError, match="--max-sw-amortizer"):
        shapes.validate(shapes.ShapesConfig(max_sw_amortizer="mlp"))
