"""The small supervised training loop both models share (CPU, fixed seeds, progress bar)."""
from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(model: torch.nn.Module, batches: Callable[[int], Iterable[tuple[Any, torch.Tensor]]],
        forward: Callable[[torch.nn.Module, Any], torch.Tensor], epochs: int, lr: float,
        desc: str, steps_per_epoch: int) -> None:
    """Adam + cross-entropy; `batches(epoch)` yields (inputs, targets) for one epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    with tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", mininterval=1.0) as bar:
        for epoch in range(epochs):
            for inputs, targets in batches(epoch):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(forward(model, inputs), targets)
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
    model.eval()


def save_artifacts(out_dir: Path, model: torch.nn.Module, labels: list[str], metadata: dict[str, Any],
                   arguments: dict[str, Any] | None = None) -> None:
    """weights.pt (state_dict), labels.json (index -> label), metadata.json, arguments.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "weights.pt")
    (out_dir / "labels.json").write_text(json.dumps({str(i): label for i, label in enumerate(labels)}, indent=1))
    (out_dir / "arguments.json").write_text(json.dumps(arguments or {}, indent=1))
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=1, sort_keys=True))


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = round(time.perf_counter() - self.start, 1)
