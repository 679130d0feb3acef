"""What `make models` checks before it writes any archive, beyond the schema (stackctl.catalog.specs):
the files a spec names exist and read, and the model loads and answers a dummy batch of 2 with
one score per label. Each failure is one SpecError line naming the spec file and the key."""
from __future__ import annotations

import json
from typing import Any

from stackctl.catalog.specs import ModelSpec, SpecError

DUMMY_BATCH = 2


def check_files(spec: ModelSpec, trained: bool = False) -> None:
    """The weights, labels and extra files exist (a trained model's only after training)."""
    if spec.train_module is not None and not trained:
        return
    named = [("model.weights", spec.weights_path), ("model.labels", spec.labels_path)]
    named += [(f"model.extra_files[{i}]", p) for i, p in enumerate(spec.extra_files)]
    for key, path in named:
        if not path.is_file():
            hint = ("training did not write it" if spec.train_module else
                    "relative paths are read from $MODEL_DATA, else the repository root")
            raise SpecError(f"{spec.source}: {key}: file {path} does not exist ({hint})")
    names = [p.name for p in spec.extra_files]
    if len(set(names)) != len(names) or {"labels.json", spec.weights_path.name} & set(names):
        raise SpecError(f"{spec.source}: model.extra_files: file names must be unique at the archive root "
                        f"and differ from labels.json and {spec.weights_path.name}: {names}")
    labels(spec)


def labels(spec: ModelSpec) -> list[str]:
    from handlers.labels import read_labels

    try:
        return read_labels(spec.labels_path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"{spec.source}: model.labels: {spec.labels_path} is not a JSON list, a JSON "
                        f"{{\"0\": label}} mapping or one label per line: {exc}") from None


def trained_arguments(spec: ModelSpec) -> dict[str, Any]:
    """The constructor arguments: the spec's, plus what training recorded (vocabulary size...)."""
    recorded = spec.build_dir / "arguments.json"
    return {**spec.arguments, **(json.loads(recorded.read_text()) if recorded.is_file() else {})}


def dummy_inputs(spec: ModelSpec) -> tuple[Any, ...]:
    """A batch of 2 at the input the handler will feed: images at the configured size and colour
    mode; for text, two short character-id sequences (the unknown-character id, valid in any
    vocabulary) with their lengths."""
    import torch

    if "image" not in spec.input_kinds and spec.handler_file.stem in ("text_classifier", "stream_classifier"):
        ids = torch.ones(DUMMY_BATCH, 4, dtype=torch.long)
        return ids, torch.tensor([4, 3])
    settings = spec.handler.image
    side = settings.center_crop or settings.resize or 224
    height, width = settings.size or (side, side)
    return (torch.zeros(DUMMY_BATCH, settings.channels, height, width),)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if "size mismatch" in line] or lines or [type(exc).__name__]
    return useful[0]


def check_exported_batch_dim(spec: ModelSpec) -> None:
    """A .pt2 program must take any batch size: TorchServe batches 1..batchSize requests."""
    import torch

    program = torch.export.load(str(spec.weights_path))
    first = program.graph_signature.user_inputs[0]
    node = next(n for n in program.graph.nodes if n.name == first)
    batch = node.meta["val"].shape[0]
    if not isinstance(batch, torch.SymInt):
        raise SpecError(f"{spec.source}: model.weights: the batch dimension of {spec.weights_path.name} is static "
                        f"({batch}); export with dynamic_shapes={{'{first}': {{0: torch.export.Dim('batch', min=1)}}}}")


def check_model(spec: ModelSpec) -> None:
    """Load the model as a worker would (on CPU) and run one forward pass on a dummy batch of 2:
    the output must be 2 rows of one score per label."""
    import torch

    from handlers import runtime

    names = labels(spec)
    if spec.exported:
        try:
            check_exported_batch_dim(spec)
        except SpecError:
            raise
        except Exception as exc:  # noqa: BLE001 (any load failure is the file's fault: say so in one line)
            raise SpecError(f"{spec.source}: model.weights: {spec.weights_path} is not a torch.export "
                            f"program (torch.export.save): {_first_line(exc)}") from None
    try:
        model = runtime.load_model(spec.architecture, trained_arguments(spec), spec.weights_path,
                                   len(names), torch.device("cpu"))
    except RuntimeError as exc:
        raise SpecError(f"{spec.source}: model.labels: {len(names)} labels, but model.weights do not load into "
                        f"{spec.architecture} with {len(names)} classes: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        raise SpecError(f"{spec.source}: model.weights: cannot load {spec.weights_path}: {_first_line(exc)}") from None
    inputs = dummy_inputs(spec)
    try:
        with torch.inference_mode():
            out = model(*inputs)
    except Exception as exc:  # noqa: BLE001
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
        raise SpecError(f"{spec.source}: handler: the model fails on a dummy batch of inputs {shapes} built "
                        f"from the handler settings: {_first_line(exc)}") from None
    if tuple(out.shape) != (DUMMY_BATCH, len(names)):
        raise SpecError(f"{spec.source}: model.labels: {len(names)} labels, but the model's output is "
                        f"{tuple(out.shape)} for a batch of {DUMMY_BATCH} (expected ({DUMMY_BATCH}, {len(names)}))")


def check(spec: ModelSpec) -> None:
    check_files(spec, trained=True)
    check_model(spec)

