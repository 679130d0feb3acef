"""`python -m stackctl.serve.gpu_check`: exit 1 with one line when STACK_REQUIRE_CUDA=1 (the GPU image
and overlay set it) and torch has no usable CUDA device; exit 0 otherwise. The container's entry
point runs the same check before TorchServe (handlers/device_check.py says why)."""
from __future__ import annotations

import sys

from handlers.device_check import check


def main() -> int:
    message = check()
    if message:
        print(message, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
