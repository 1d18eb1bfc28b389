"""A trusted sample-quality metric for the digits that ship with scikit-learn (8×8, 1,797 images).

`DigitsMetric` trains a small CNN classifier on a fixed training split (held-out accuracy ≥ 97 % is checked when it
is built) and scores generated images by the Fréchet distance of its penultimate features to those of the WHOLE
held-out split. Every score comes with the real-vs-real floor: the same distance for as many real training images
as there are samples, so a reader sees how far a model is from "as good as real data at this sample size". The
Fréchet distance is biased upwards at small sample sizes, so scores need at least `min_samples` (1,000) images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxflow.metrics.frechet import frechet_distance


class DigitsMetric:
    """Fréchet distance and class accuracy of generated digits, with the real-vs-real floor.

    key: fixes the split (`test_fraction` held out) and the classifier's training. Images are [n, 8, 8, 1] in
    [−1, 1] (`jaxflow.data.load_digits`). After construction: `accuracy` (held-out), `train`, `test` (ImageData).
    """

    def __init__(
        self,
        key: jax.Array | None = None,
        *,
        steps: int = 1000,
        test_fraction: float = 0.2,
        min_accuracy: float = 0.97,
        min_samples: int = 1000,
    ):
        import jaxflow as jf

        key = jax.random.key(0) if key is None else key
        data = jf.data.load_digits()
        self.train, self.test = jf.data.train_test_split(jax.random.fold_in(key, 0), data, test_fraction)
        self.min_samples = int(min_samples)
        self.classifier = jf.nn.ConvClassifier(num_classes=10, pool="flatten")
        self.params = _train_classifier(self.classifier, self.train, jax.random.fold_in(key, 1), steps)
        self._features = jax.jit(lambda x: self.classifier.apply(self.params, x, method=jf.nn.ConvClassifier.features))
        self._logits = jax.jit(lambda x: self.classifier.apply(self.params, x))
        self.accuracy = self.class_accuracy(self.test.images, self.test.labels)
        if self.accuracy < min_accuracy:
            raise RuntimeError(
                f"the feature classifier reached {self.accuracy:.3f} held-out accuracy, below {min_accuracy}; "
                "train longer (steps=...) or use another key"
            )
        self.test_features = self.features(self.test.images)

    def features(self, images: jax.Array) -> jax.Array:
        images = _check_images(images)
        return jnp.concatenate([self._features(images[i : i + 1024]) for i in range(0, images.shape[0], 1024)])

    def class_accuracy(self, images: jax.Array, labels: jax.Array) -> float:
        """Share of `images` the classifier assigns to `labels`."""
        images = _check_images(images)
        pred = jnp.concatenate(
            [jnp.argmax(self._logits(images[i : i + 1024]), -1) for i in range(0, len(images), 1024)]
        )
        return float(jnp.mean(pred == jnp.asarray(labels)))

    def frechet(self, samples: jax.Array) -> float:
        """Fréchet feature distance of `samples` (≥ `min_samples` images) to the whole held-out split."""
        samples = _check_images(samples)
        if samples.shape[0] < self.min_samples:
            raise ValueError(
                f"the Fréchet distance needs at least {self.min_samples} samples (it is biased at small sizes), "
                f"got {samples.shape[0]}"
            )
        return float(frechet_distance(self.features(jnp.clip(samples, -1.0, 1.0)), self.test_features))

    def floor(self, n: int | None = None) -> float:
        """The real-vs-real floor: the Fréchet distance of n real training images (default `min_samples`, at most
        the training split) to the held-out split."""
        n = min(self.min_samples if n is None else int(n), self.train.images.shape[0])
        return float(frechet_distance(self.features(self.train.images[:n]), self.test_features))

    def score(self, samples: jax.Array) -> dict:
        """{'fd': ..., 'floor': ..., 'n': ...}: a score and its floor at the same sample size."""
        n = int(samples.shape[0])
        return {"fd": self.frechet(samples), "floor": self.floor(n), "n": n}


def _check_images(images) -> jax.Array:
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (8, 8, 1):
        raise ValueError(f"digits images are [n, 8, 8, 1], got shape {images.shape}")
    if not bool(jnp.all(jnp.isfinite(images))):
        raise ValueError("images contain non-finite values")
    return images


def _train_classifier(clf, train, key, steps: int):
    """Cross-entropy with one-pixel random shifts, AdamW; the library's train step (unrolled: conv gradients are
    slow inside a scan on CPU)."""
    from jaxflow.train import TrainState, make_train_step

    images, labels = jnp.asarray(train.images), jnp.asarray(train.labels)
    optimizer = optax.adamw(2e-3, weight_decay=1e-4)

    def data_fn(k):
        idx = jax.random.choice(k, images.shape[0], (128,), replace=False)
        return {"x": images[idx], "y": labels[idx]}

    def loss(p, batch, k):
        shift = jax.random.randint(k, (2,), -1, 2)
        x = jnp.roll(batch["x"], shift, axis=(1, 2))
        value = optax.softmax_cross_entropy_with_integer_labels(clf.apply(p, x), batch["y"]).mean()
        return value, {}

    state = TrainState.create(clf.init(jax.random.fold_in(key, 0), images[:1]), optimizer, jax.random.fold_in(key, 1))
    step = make_train_step(loss, optimizer, data_fn=data_fn, unroll=True)
    chunk = 25
    for _ in range(max(1, steps // chunk)):
        state, _ = step(state, None, chunk)
    return jax.device_get(state.params)
