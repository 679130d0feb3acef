"""A native TorchServe for tests: started through stackctl.serve.native (as `make serve` starts it) and
polled until ready, never waited for with a fixed sleep."""
from __future__ import annotations

import pytest

from stackctl.serve.native import NativeStack


def serve_until_ready(stack: NativeStack, extra_env: dict[str, str] | None = None) -> NativeStack:
    """TorchServe on the stack's model store, polled until every archive there has a READY worker
    (`stack.proc` is the server); when it does not get there, stopped and the test failed with
    the tail of its log. The caller stops it (stop_all) when done."""
    proc = stack.start_torchserve(extra_env)
    stack.proc = proc  # type: ignore[attr-defined]
    try:
        stack.wait_for_torchserve(proc, timeout=240)
    except Exception:
        log = stack.run_dir / "torchserve.out"
        tail = log.read_text(errors="replace")[-4000:] if log.is_file() else "(no log)"
        stack.stop("torchserve")
        pytest.fail(f"TorchServe did not become ready:\n{tail}", pytrace=False)
    return stack
