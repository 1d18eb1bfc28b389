"""A model trained with label dropout samples the requested class more often under guidance (2-D, 3 classes)."""

import jax
import jax.numpy as jnp
import optax

import jaxflow as jf

MEANS = jnp.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def test_guidance_accuracy_rises_with_w():
    def data_fn(k):
        k_c, k_n = jax.random.split(k)
        labels = jax.random.randint(k_c, (256,), 0, 3)
        return {"x1": MEANS[labels] + 0.8 * jax.random.normal(k_n, (256, 2)), "labels": labels}

    model = jf.nn.MLPVelocity(out_dim=2, hidden=(64, 64), num_classes=3)
    v = jf.nn.velocity_fn(model)
    loss = jf.losses.cfm_loss(v, conditional=True, label_dropout=0.2, null_label=3)
    opt = optax.adam(2e-3)
    state = jf.train.TrainState.create(
        jax.random.key(1), jf.nn.init_mlp(jax.random.key(0), model, 2, jnp.zeros(1, jnp.int32)), opt
    )
    state, _ = jf.train.fit(
        state, jf.train.make_train_step(loss, opt, data_fn=data_fn), 1500, steps_per_call=500, progress=False
    )
    labels = jnp.arange(3000) % 3
    z = jax.random.normal(jax.random.key(2), (3000, 2))
    acc = []
    for w in (0.0, 1.0, 3.0):
        x = jf.sample(jf.sampling.guided(v, w, 3), z, params=state.params, cond=labels, solver="heun", steps=20).x
        # Bayes classifier of the equal-weight, equal-covariance mixture: the nearest mean (independent of the model)
        pred = jnp.argmin(jnp.sum((x[:, None] - MEANS[None]) ** 2, -1), -1)
        acc.append(float(jnp.mean(pred == labels)))
    assert acc[0] < 0.45  # unguided (w = 0) ignores the label: about 1/3
    assert acc[0] < acc[1] < acc[2], acc
    assert acc[1] > 0.75
