"""`digits`: a small CNN on scikit-learn's bundled handwritten digits (8x8, values 0..16).

Training sees every image through the serving preprocessing (handlers.image), rendered at
several sizes and in both polarities, so what the server does to a photo is what the model
learned from.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

SEED = 0
HELD_OUT_FRACTION = 0.2
LABELS = [str(d) for d in range(10)]


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Dropout(0.25),
            nn.Linear(2 * width * 16, 128), nn.ReLU(), nn.Dropout(0.25),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Inputs arrive in the dataset's units (ink 0..16); scale to ~[0, 1] for the network.
        return self.net(x / 16.0)


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_images, train_labels, held_out_images, held_out_labels); images 8x8 in 0..16."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        data.images.astype(np.float32), data.target.astype(np.int64),
        test_size=HELD_OUT_FRACTION, random_state=SEED, stratify=data.target)
    return train_x, train_y, test_x, test_y


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The held-out 20% (never trained on): images 8x8 in 0..16 and their labels."""
    _, _, images, labels = split()
    return images, labels


def render_digit(image: np.ndarray, size: int = 8, fmt: str = "png", dark_on_light: bool = False,
                 resample: Image.Resampling = Image.Resampling.BILINEAR) -> bytes:
    """An 8x8 dataset digit as an ordinary image file: `size` px square, light-on-dark by default."""
    gray = np.clip(image / 16.0 * 255.0, 0, 255).astype(np.uint8)
    if dark_on_light:
        gray = 255 - gray
    picture = Image.fromarray(gray).resize((size, size), resample)
    if fmt.lower() in ("jpeg", "jpg"):
        picture = picture.convert("RGB")
    buffer = io.BytesIO()
    save_kwargs: dict[str, Any] = {"quality": 95} if fmt.lower() in ("jpeg", "jpg", "webp") else {}
    picture.save(buffer, format="JPEG" if fmt.lower() == "jpg" else fmt.upper(), **save_kwargs)
    return buffer.getvalue()


def _views(image: np.ndarray, rng: np.random.Generator) -> list[Image.Image]:
    """The original plus rendered variants of one digit (size, resampling, polarity, framing)."""
    gray = np.clip(image / 16.0 * 255.0, 0, 255).astype(np.uint8)
    views = [Image.fromarray(gray)]
    for _ in range(3):
        size = int(rng.choice([16, 28, 64, 128]))
        resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
        picture = gray if rng.random() < 0.5 else 255 - gray
        view = Image.fromarray(picture).resize((size, size), resample)
        if rng.random() < 0.5:  # extra background around the digit
            pad = int(size * rng.uniform(0.1, 0.6))
            canvas = Image.new("L", (size + 2 * pad, size + 2 * pad), int(np.median(np.asarray(view)[0])))
            canvas.paste(view, (pad + int(rng.integers(-pad // 2, pad // 2 + 1)), pad))
            view = canvas
        views.append(view)
    return views


def preprocess_all(images: np.ndarray, settings: Any, rng: np.random.Generator | None) -> torch.Tensor:
    from handlers.image import preprocess_image

    tensors: list[torch.Tensor] = []
    for image in images:
        views = _views(image, rng) if rng is not None else [Image.fromarray(np.clip(image / 16.0 * 255.0, 0, 255).astype(np.uint8))]
        tensors.extend(preprocess_image(view, settings) for view in views)
    return torch.stack(tensors)


def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.inference_mode():
        return float((model(inputs).argmax(dim=1) == labels).float().mean())


def train(spec: Any, out_dir: Path) -> dict[str, Any]:
    from models.training import Stopwatch, fit, save_artifacts, seed_everything

    seed_everything(SEED)
    settings = spec.handler.image
    with Stopwatch() as clock:
        train_images, train_labels, test_images, test_labels = split()
        rng = np.random.default_rng(SEED)
        inputs = preprocess_all(train_images, settings, rng)
        targets = torch.from_numpy(np.repeat(train_labels, len(inputs) // len(train_labels)))
        model = DigitsCNN(num_classes=len(LABELS), **spec.arguments)
        batch_size, epochs = 64, 12
        steps = (len(inputs) + batch_size - 1) // batch_size

        def batches(epoch: int):
            order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(SEED + epoch))
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                yield inputs[index], targets[index]

        fit(model, batches, lambda m, x: m(x), epochs=epochs, lr=3e-3, desc="train digits", steps_per_epoch=steps)
        held_out = accuracy(model, preprocess_all(test_images, settings, None), torch.from_numpy(test_labels))
    metadata = {"held_out_accuracy": round(held_out, 4), "held_out_samples": int(len(test_labels)),
                "train_samples": int(len(inputs)), "train_seconds": clock.seconds, "seed": SEED,
                "dataset": "sklearn.datasets.load_digits"}
    save_artifacts(out_dir, model, LABELS, metadata)
    return metadata
