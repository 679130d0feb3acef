"""Model outputs -> the JSON answer: {"model": name, "top_k": [{"label", "probability"}, ...]}."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def top_k(logits: torch.Tensor, labels: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """Per row of logits, the k most probable labels, best first."""
    probabilities = torch.softmax(logits.float(), dim=-1).cpu()
    k = max(1, min(int(k), probabilities.shape[-1]))
    values, indices = torch.topk(probabilities, k, dim=-1)
    return [[{"label": labels[i], "probability": round(float(p), 6)} for p, i in zip(row_p.tolist(), row_i.tolist())]
            for row_p, row_i in zip(values, indices)]


def answer(model_name: str, ranked: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": model_name, "top_k": ranked}
