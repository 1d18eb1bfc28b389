"""The trusted digits metric: an accurate feature classifier, a Fréchet distance that orders known degradations,
and the real-vs-real floor."""

import jax
import pytest

import jaxflow as jf


@pytest.fixture(scope="module")
def metric():
    return jf.metrics.DigitsMetric(jax.random.key(0))


def test_classifier_is_accurate_and_fd_orders_degradations(metric):
    assert metric.accuracy >= 0.97
    real = metric.train.images[:1000]
    floor = metric.floor(1000)
    scores = [metric.frechet(real + s * jax.random.normal(jax.random.key(1), real.shape)) for s in (0.1, 0.3, 0.6)]
    assert floor < scores[0] < scores[1] < scores[2]
    # the held-out split scores (almost) zero against itself: FD is a distance between fitted Gaussians
    assert float(jf.metrics.frechet_distance(metric.test_features, metric.test_features)) < 1e-2
    noise = jax.random.uniform(jax.random.key(2), (1000, 8, 8, 1), minval=-1, maxval=1)
    assert metric.frechet(noise) > 10 * floor
    # class accuracy of the classifier on real training images with their labels
    assert metric.class_accuracy(real, metric.train.labels[:1000]) > 0.97


def test_metric_refuses_small_samples_and_bad_images(metric):
    with pytest.raises(ValueError, match="at least 1000"):
        metric.frechet(metric.train.images[:200])
    with pytest.raises(ValueError, match=r"\[n, 8, 8, 1\]"):
        metric.frechet(metric.train.images[:1000, :, :, 0])
    with pytest.raises(ValueError, match="non-finite"):
        metric.features(metric.train.images.at[0, 0, 0, 0].set(float("nan")))
