"""A trusted sample-quality metric for the digits that ship with scikit-learn (8×8, 1,797 images).

`DigitsMetric` scores generated images by the Fréchet distance of a small CNN classifier's penultimate features to
those of the WHOLE held-out split, and by class accuracy. Every score comes with the real-vs-real floor: the same
distance for as many real training images as there are samples, so a reader sees how far a model is from "as good as
real data at this sample size". The Fréchet distance is biased upwards at small sample sizes, so scores need at
least `min_samples` (1,000) images.

One metric for every study: `DigitsMetric()` loads the classifier weights and the train/held-out split that ship with
jaxflow (`digits_classifier.npz` beside this file), so Fréchet distances compare across studies and nothing is trained.
`DigitsMetric(key)` trains a fresh classifier instead (a fork's own metric); `save(path)` writes one in the shipped
format. The shipped file was made by `DigitsMetric(jax.random.key(0)).save(SHIPPED)`.
"""

from __future__ import annotations

from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxflow.data.images import ImageData, load_digits, train_test_split
from jaxflow.metrics.frechet import frechet_distance
from jaxflow.nn.classifier import ConvClassifier

SHIPPED = Path(__file__).with_name("digits_classifier.npz")
NUM_CLASSES = 10


class DigitsMetric:
    """Fréchet distance and class accuracy of generated digits, with the real-vs-real floor.

    Args:
        key: None (default) loads the shipped classifier and split; a key trains a new classifier on a new split
            (`test_fraction` held out), reproducible from the key.
        steps: training steps of a new classifier (ignored when loading).
        test_fraction: the held-out fraction of a new split (ignored when loading).
        weights: a file written by `save` to load instead of the shipped one.
        min_accuracy: the held-out accuracy the classifier must reach (checked on load and after training).
        min_samples: the fewest images `frechet` accepts.

    Raises:
        ValueError: both key and weights given, or a classifier below `min_accuracy`.

    Images are [n, 8, 8, 1] in [−1, 1] (`jaxflow.data.load_digits`); images that look like [0, 1] or [0, 255] are
    refused. After construction: `accuracy` (held-out), `train`, `test` (ImageData), `params`.
    """

    def __init__(
        self,
        key: jax.Array | None = None,
        *,
        steps: int = 1000,
        test_fraction: float = 0.2,
        min_accuracy: float = 0.97,
        min_samples: int = 1000,
        weights: str | Path | None = None,
    ):
        if key is not None and weights is not None:
            raise ValueError("pass either key (train a classifier) or weights (load one), not both")
        data = load_digits()
        self.classifier = ConvClassifier(num_classes=NUM_CLASSES, pool="flatten")
        self.min_samples = int(min_samples)
        if key is None:
            self.params, index, self.meta = _load(Path(weights) if weights is not None else SHIPPED, self.classifier)
            self.train, self.test = (_take(data, index["train_index"]), _take(data, index["test_index"]))
        else:
            self.train, self.test = train_test_split(jax.random.fold_in(key, 0), data, test_fraction)
            self.params = _train_classifier(self.classifier, self.train, jax.random.fold_in(key, 1), int(steps))
            self.meta = {"steps": int(steps), "test_fraction": float(test_fraction)}
        self._features = jax.jit(lambda x: self.classifier.apply(self.params, x, method=ConvClassifier.features))
        self._logits = jax.jit(lambda x: self.classifier.apply(self.params, x))
        self.accuracy = self.class_accuracy(self.test.images, self.test.labels)
        if self.accuracy < min_accuracy:
            raise RuntimeError(
                f"the feature classifier reaches {self.accuracy:.3f} held-out accuracy, below {min_accuracy}; "
                "train longer (steps=...) or use another key"
            )
        self.test_features = self.features(self.test.images)

    def save(self, path: str | Path) -> None:
        """Write the classifier weights and the split (as indices into `load_digits()`, in order) to `path` (.npz)."""
        all_images = load_digits().images
        flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(self.params), sep="/")
        arrays = {f"param:{k}": np.asarray(v) for k, v in flat.items()}
        np.savez(
            path,
            train_index=_find_rows(all_images, self.train.images),
            test_index=_find_rows(all_images, self.test.images),
            accuracy=np.float64(self.accuracy),
            steps=np.int64(self.meta.get("steps", -1)),
            **arrays,
        )

    def features(self, images: jax.Array) -> jax.Array:
        images = _check_images(images)
        return jnp.concatenate([self._features(images[i : i + 1024]) for i in range(0, images.shape[0], 1024)])

    def class_accuracy(self, images: jax.Array, labels: jax.Array) -> float:
        """Share of `images` the classifier assigns to `labels` (integers in [0, 10), one per image)."""
        images = _check_images(images)
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be [n] = [{images.shape[0]}], got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise ValueError(f"labels must lie in [0, {NUM_CLASSES}), got values in [{labels.min()}, {labels.max()}]")
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
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"digits images are floats in [-1, 1], got dtype {images.dtype}")
    if not bool(jnp.all(jnp.isfinite(images))):
        raise ValueError("images contain non-finite values")
    if images.size:
        lo, hi = float(images.min()), float(images.max())
        # generated samples overshoot [-1, 1] (an undertrained model's by a lot; they are clipped before scoring),
        # but a set with no value below zero has no background (-1) at all: it was scaled to [0, 1] or [0, 255]
        if lo >= 0.0:
            raise ValueError(
                f"digits images are in [-1, 1] (background -1), got values in [{lo:.3g}, {hi:.3g}]; "
                "rescale with jaxflow.data.to_unit_range(x, max_value)"
            )
    return images


def _take(data: ImageData, index: np.ndarray) -> ImageData:
    return ImageData(data.images[index], data.labels[index], data.num_classes)


def _find_rows(all_images, rows) -> np.ndarray:
    flat_all = np.asarray(all_images).reshape(len(all_images), -1)
    lookup: dict[bytes, list[int]] = {}
    for i, row in enumerate(flat_all):
        lookup.setdefault(row.tobytes(), []).append(i)
    return np.asarray([lookup[r.tobytes()].pop(0) for r in np.asarray(rows).reshape(len(rows), -1)], np.int32)


def _load(path: Path, classifier: ConvClassifier):
    if not path.exists():
        raise FileNotFoundError(f"no digits classifier weights at {path}")
    with np.load(path) as f:
        stored = {k[len("param:") :]: f[k] for k in f.files if k.startswith("param:")}
        index = {"train_index": f["train_index"], "test_index": f["test_index"]}
        meta = {"steps": int(f["steps"]), "accuracy": float(f["accuracy"])}
    # the parameter shapes only (abstract: nothing is initialised or computed)
    template = flax.traverse_util.flatten_dict(
        flax.core.unfreeze(jax.eval_shape(classifier.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))), sep="/"
    )
    if set(stored) != set(template) or any(stored[k].shape != template[k].shape for k in template):
        raise ValueError(f"{path} does not hold weights of this classifier (parameters or shapes differ)")
    params = flax.traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in stored.items()}, sep="/")
    n = len(load_digits().images)
    both = np.concatenate([index["train_index"], index["test_index"]])
    if both.shape != (n,) or not np.array_equal(np.sort(both), np.arange(n)):
        raise ValueError(f"{path}: the stored split is not a partition of the {n} digits")
    return params, index, meta


def _train_classifier(clf, train, key, steps: int):
    """Cross-entropy with one-pixel random shifts, AdamW, batches of 128; a plain optax loop (one jitted step)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    images, labels = jnp.asarray(train.images), jnp.asarray(train.labels)
    optimizer = optax.adamw(2e-3, weight_decay=1e-4)
    params = clf.init(jax.random.fold_in(key, 0), images[:1])
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, k):
        k_idx, k_shift = jax.random.split(k)
        idx = jax.random.choice(k_idx, images.shape[0], (128,), replace=False)
        shift = jax.random.randint(k_shift, (2,), -1, 2)
        x = jnp.roll(images[idx], shift, axis=(1, 2))

        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(clf.apply(p, x), labels[idx]).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for i in range(steps):
        params, opt_state = step(params, opt_state, jax.random.fold_in(key, i + 1))
    return jax.device_get(params)
