"""Brought models for tests, the load test and the bench: a torchvision resnet18 state_dict and a
torch.export program, each with its labels and spec, written outside the repository.

    models = write_byo_models(tmp_path)            # tmp_path: any folder outside the repository
    env = models.env()                              # STACK_SPECS_DIR, STACK_MODEL_STORE, MODEL_DATA
    subprocess.run([python, "-m", "stackctl", "models"], env={**os.environ, **env}, check=True)
    NativeStack(run_dir, Ports.free(), model_store=models.model_store)

The weights are RANDOMLY INITIALISED (seeded): the answers mean nothing, but they are the
answers of exactly these weights. The spec folder is a copy of config/models/ plus the two specs,
so the store serves digits, langid and both brought models together.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from stackctl import paths

SEED = 0
RESNET_LABELS = ["daisy", "dandelion", "rose", "sunflower", "tulip"]
PT2_LABELS = ["circle", "square", "triangle", "star"]
PT2_SIDE = 32
SLO = {"p95_ms": 500, "p99_ms": 1000, "max_error_ratio": 0.01}


class TinyCNN(torch.nn.Module):
    """The model behind the .pt2: only its exported graph reaches the archive, never this class."""

    def __init__(self, num_classes: int = len(PT2_LABELS)) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@dataclass(frozen=True)
class ByoModels:
    spec_dir: Path          # config/models/ copied, plus resnet18.yaml and shapes.yaml
    model_store: Path       # an empty store for `python -m stackctl models` to fill
    data_dir: Path          # the weights and labels (MODEL_DATA: the specs name them relatively)
    names: tuple[str, ...] = ("resnet18", "shapes")
    labels: dict[str, list[str]] = field(default_factory=lambda: {"resnet18": RESNET_LABELS, "shapes": PT2_LABELS})
    top_k: dict[str, int] = field(default_factory=lambda: {"resnet18": 5, "shapes": 2})

    def env(self) -> dict[str, str]:
        return {"STACK_SPECS_DIR": str(self.spec_dir), "STACK_MODEL_STORE": str(self.model_store),
                "MODEL_DATA": str(self.data_dir)}


def image_handler(**extra: object) -> dict[str, object]:
    return {"top_k": 3, "torch_threads": 1, **extra}


def resnet18_spec() -> dict:
    """A torchvision architecture with user weights: the README's first recipe."""
    return {
        "name": "resnet18", "version": "1.0", "description": "torchvision resnet18, random weights (tests)",
        "model": {"handler": "handlers/image_classifier.py", "architecture": "torchvision:resnet18",
                  "weights": "resnet18/weights.pt", "labels": "resnet18/labels.txt"},
        "serving": {"minWorkers": 1, "maxWorkers": 1, "batchSize": 4, "maxBatchDelay": 5, "responseTimeout": 60},
        "handler": image_handler(top_k=5, image={"color_mode": "RGB", "resize": 160, "center_crop": 128,
                                                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}),
        "slo": SLO, "load": {"weight": 1, "image_sizes": [64, 256], "image_formats": ["jpeg", "png"]},
    }


def pt2_spec() -> dict:
    """A torch.export program: no architecture, no class; the README's second recipe."""
    return {
        "name": "shapes", "version": "1.0", "description": "a small exported CNN, random weights (tests)",
        "model": {"handler": "handlers/image_classifier.py", "weights": "shapes/model.pt2",
                  "labels": "shapes/labels.json"},
        "serving": {"minWorkers": 1, "maxWorkers": 1, "batchSize": 4, "maxBatchDelay": 5, "responseTimeout": 30},
        "handler": image_handler(top_k=2, fuse_conv_bn=False,
                                 image={"color_mode": "RGB", "resize": PT2_SIDE, "center_crop": PT2_SIDE,
                                        "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}),
        "slo": SLO, "load": {"weight": 1, "image_sizes": [32, 128], "image_formats": ["png"]},
    }


def export_tiny_cnn(path: Path, dynamic_batch: bool = True) -> None:
    """`path`: TinyCNN saved by torch.export.save, its batch dimension dynamic unless told not."""
    torch.manual_seed(SEED)
    model = TinyCNN().eval()
    example = (torch.randn(2, 3, PT2_SIDE, PT2_SIDE),)
    # min=1: TorchServe sends batches of 1..batchSize, and export would otherwise assume >= 2.
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic_batch else None
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(torch.export.export(model, example, dynamic_shapes=dynamic), str(path))


def write_resnet18(data_dir: Path) -> None:
    import torchvision

    folder = data_dir / "resnet18"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    model = torchvision.models.get_model("resnet18", weights=None, num_classes=len(RESNET_LABELS))
    torch.save(model.state_dict(), folder / "weights.pt")
    (folder / "labels.txt").write_text("\n".join(RESNET_LABELS) + "\n")


def write_spec(spec_dir: Path, doc: dict, file_name: str | None = None) -> Path:
    path = spec_dir / (file_name or f"{doc['name']}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_byo_models(tmp: Path) -> ByoModels:
    """Weights, labels and specs of the two brought models under `tmp` (outside the repository)."""
    tmp = Path(tmp).resolve()
    if tmp.is_relative_to(paths.ROOT):
        raise ValueError(f"{tmp} is inside the repository; brought models live outside it")
    data_dir, spec_dir = tmp / "data", tmp / "specs"
    # "model_store" in the path: config.properties allows archives only from such folders.
    store = tmp / "model_store"
    write_resnet18(data_dir)
    export_tiny_cnn(data_dir / "shapes" / "model.pt2")
    (data_dir / "shapes" / "labels.json").write_text(json.dumps(PT2_LABELS) + "\n")
    shutil.copytree(paths.CONFIG / "models", spec_dir, dirs_exist_ok=True)
    write_spec(spec_dir, resnet18_spec())
    write_spec(spec_dir, pt2_spec())
    store.mkdir(parents=True, exist_ok=True)
    return ByoModels(spec_dir=spec_dir, model_store=store, data_dir=data_dir)


def write_second_version(models: ByoModels, version: str = "2.0") -> list[str]:
    """shapes@<version>.yaml: the same program as `shapes` with its labels in upper case, so an
    answer tells which version gave it. Returns that version's labels."""
    labels = [label.upper() for label in PT2_LABELS]
    (models.data_dir / "shapes" / f"labels-{version}.json").write_text(json.dumps(labels) + "\n")
    doc = pt2_spec()
    doc["version"] = version
    doc["model"]["labels"] = f"shapes/labels-{version}.json"
    write_spec(models.spec_dir, doc, f"shapes@{version}.yaml")
    return labels
