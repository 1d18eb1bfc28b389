"""Real image data: the 8×8 digits that ship with scikit-learn, and CIFAR-10 from a local folder.

Images are returned channels-last, [N, H, W, C], as float32 in [−1, 1] (`to_unit_range` maps back), with integer
labels [N]. Nothing is downloaded: CIFAR-10 is read from a folder holding the standard python-pickle batches
(`data_batch_1` … `data_batch_5`, `test_batch`, each a dict with b"data" [N, 3072] uint8 in CHW order and b"labels").
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxflow._deprecation import deprecated_alias


class ImageData(NamedTuple):
    """A labelled image set.

    Attributes:
        images: float32 [N, H, W, C] in [−1, 1].
        labels: int32 [N].
        num_classes: the number of classes.
    """

    images: jax.Array
    labels: jax.Array
    num_classes: int


def to_unit_range(x: ArrayLike, max_value: float | ArrayLike) -> jax.Array:
    """Raw intensities in [0, max_value] → [−1, 1].

    Args:
        x: raw intensities.
        max_value: the largest raw value (16 for the digits, 255 for 8-bit images).

    Returns:
        float32 values in [−1, 1].
    """
    return jnp.asarray(x, jnp.float32) / max_value * 2.0 - 1.0


def from_unit_range(x: ArrayLike, max_value: float | ArrayLike) -> jax.Array:
    """[−1, 1] → raw intensities in [0, max_value] (clipped first), the inverse of `to_unit_range`.

    Args:
        x: images in [−1, 1].
        max_value: the intensity of white (scalar or broadcastable to x).

    Returns:
        The images in [0, max_value].
    """
    return (jnp.clip(x, -1.0, 1.0) + 1.0) / 2.0 * max_value


def load_digits() -> ImageData:
    """The 1,797 8×8 handwritten digits of scikit-learn (intensities 0–16), [1797, 8, 8, 1] in [−1, 1].

    Returns:
        `ImageData` (images [1797, 8, 8, 1] in [−1, 1], labels [1797], 10 classes).
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as err:  # pragma: no cover - scikit-learn is in the [experiments] and [dev] extras
        raise ImportError("the digits data set needs scikit-learn: pip install 'jaxflow[experiments]'") from err
    d = _load()
    images = to_unit_range(d.images[..., None], 16.0)
    return ImageData(images, jnp.asarray(d.target, jnp.int32), 10)


def train_test_split(key: jax.Array, data: ImageData, test_fraction: float = 0.2) -> tuple[ImageData, ImageData]:
    """A random train/test split (stratification-free), reproducible from `key`.

    Args:
        key: the JAX key of the permutation.
        data: the `ImageData`.
        test_fraction: the share held out, in (0, 1).

    Returns:
        (train, test) `ImageData`.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    n = data.images.shape[0]
    perm = np.asarray(jax.random.permutation(key, n))
    n_test = int(round(test_fraction * n))
    te, tr = perm[:n_test], perm[n_test:]
    return (
        ImageData(data.images[tr], data.labels[tr], data.num_classes),
        ImageData(data.images[te], data.labels[te], data.num_classes),
    )


split = deprecated_alias(
    train_test_split, "jaxflow.data.split", adapt=lambda data, key, test_fraction=0.2: ((key, data, test_fraction), {})
)

CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-pickle batch; every problem is reported with the file's path."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise ValueError(f"{path}: not a readable CIFAR-10 python batch ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{path} is not a CIFAR-10 python batch (it holds {keys}, not b'data' and b'labels')")
    raw = np.asarray(d[b"data"])
    if raw.ndim != 2 or raw.shape[1] != 3072:
        raise ValueError(f"{path}: data must be [N, 3072] uint8, got shape {raw.shape}")
    if raw.dtype != np.uint8:
        if not np.issubdtype(raw.dtype, np.number):
            raise ValueError(f"{path}: data must be numeric pixels, got dtype {raw.dtype}")
        if not np.all(np.isfinite(raw)) or raw.min() < 0 or raw.max() > 255 or np.any(raw != np.round(raw)):
            raise ValueError(
                f"{path}: pixel values must be integers in [0, 255], got dtype {raw.dtype} with values in "
                f"[{np.nanmin(raw)}, {np.nanmax(raw)}] (a uint8 cast would wrap them silently)"
            )
    data = raw.astype(np.uint8)
    labels = np.asarray(d[b"labels"])
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be one integer per image, got shape {labels.shape} ({labels.dtype})")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: labels must lie in [0, 9], got [{labels.min()}, {labels.max()}]")
    return data, labels.astype(np.int64)


def load_cifar10(folder: str | Path, split: str = "train", files: tuple[str, ...] | None = None) -> ImageData:
    """CIFAR-10 from `folder` in the python-pickle batch format; [N, 32, 32, 3] in [−1, 1].

    Args:
        folder: the folder holding `data_batch_1` … `data_batch_5` and `test_batch` (the python version of the set).
        split: "train" or "test".
        files: explicit batch file names (default: the split's).

    Returns:
        `ImageData` (images [N, 32, 32, 3] in [−1, 1], labels [N], 10 classes).

    Raises:
        FileNotFoundError: a missing folder or batch file (nothing is downloaded).
    """
    folder = Path(folder)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    names = files or (CIFAR_TRAIN if split == "train" else CIFAR_TEST)
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 batches {missing} not found in {folder}")
    parts = [_read_batch(folder / n) for n in names]
    data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.concatenate([p[1] for p in parts])
    return ImageData(to_unit_range(data, 255.0), jnp.asarray(labels, jnp.int32), 10)
