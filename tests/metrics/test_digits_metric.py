"""The trusted digits metric: an accurate feature classifier, a Fréchet distance that orders known degradations,
the real-vs-real floor, one shipped classifier for every study, and clear errors on images in the wrong range."""

import jax
import numpy as np
import pytest

import jaxflow as jf


@pytest.fixture(scope="module")
def metric():
    return jf.metrics.DigitsMetric()


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


def test_shipped_split_is_a_partition_and_matches_its_recipe(metric):
    """The shipped file says it was made by DigitsMetric(key(0)): the split is exactly that key's split, and a
    classifier retrained from the recipe agrees with the shipped one on the held-out labels."""
    data = jf.data.load_digits()
    assert metric.train.images.shape[0] + metric.test.images.shape[0] == data.images.shape[0]
    fresh = jf.metrics.DigitsMetric(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(fresh.test.images), np.asarray(metric.test.images))
    np.testing.assert_array_equal(np.asarray(fresh.train.labels), np.asarray(metric.train.labels))
    assert abs(fresh.accuracy - metric.accuracy) < 0.02
    # the shipped weights are not a random classifier: the two agree on almost every held-out image
    a = np.argmax(np.asarray(metric._logits(metric.test.images)), -1)
    b = np.argmax(np.asarray(fresh._logits(metric.test.images)), -1)
    assert np.mean(a == b) > 0.95


def test_save_and_load_round_trip(metric, tmp_path):
    path = tmp_path / "clf.npz"
    metric.save(path)
    again = jf.metrics.DigitsMetric(weights=path)
    np.testing.assert_array_equal(np.asarray(again.test_features), np.asarray(metric.test_features))
    assert again.floor(1000) == metric.floor(1000)
    np.savez(tmp_path / "bad.npz", **{k: v for k, v in np.load(path).items() if k != "param:params/head/bias"})
    with pytest.raises(ValueError, match="does not hold weights"):
        jf.metrics.DigitsMetric(weights=tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        jf.metrics.DigitsMetric(weights=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="either key"):
        jf.metrics.DigitsMetric(jax.random.key(0), weights=path)


def test_metric_refuses_small_samples_and_bad_images(metric, unchecked):
    real = metric.train.images[:1000]
    with pytest.raises(ValueError, match="at least 1000"):
        metric.frechet(metric.train.images[:200])
    with pytest.raises(ValueError, match=r"\[n, 8, 8, 1\]"):
        metric.frechet(real[:, :, :, 0])
    with pytest.raises(ValueError, match="non-finite"):
        metric.features(real.at[0, 0, 0, 0].set(float("nan")))
    # the same digits in [0, 1] or [0, 255] are refused, not scored (they would score FD in the hundreds)
    for scaled in ((real + 1) / 2, (real + 1) * 127.5):
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            metric.frechet(scaled)
    with pytest.raises(ValueError, match="floats"):
        metric.features(np.zeros((4, 8, 8, 1), np.uint8))
    labels = np.asarray(metric.train.labels[:1000])
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        metric.class_accuracy(real, labels + 10)
    with pytest.raises(ValueError, match="integers"):
        metric.class_accuracy(real, labels.astype(np.float32))
    with pytest.raises(ValueError, match="labels must be"):
        metric.class_accuracy(real, labels[:10])
