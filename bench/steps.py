"""A bench step: what one step of load measured (loadtest.measurement) against one target, the
cores it took and the flags that say when the machine or the client, not the server, was the limit.

Its JSON is a step in bench/results/*.json, in the shape those files have always had, so `from_json`
reads old results too. Plain data, no Locust: steps are read without starting the load generator
(loadgen.py measures them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from loadtest.measurement import Measurement

CLIENT_BOUND_CORES = 0.85     # one gevent thread: above this the load generator is the bottleneck
BUSY_MACHINE = 0.9            # share of all cores busy: the server and client compete for cores
STOLEN = 0.1                  # cores of steal time worth a flag (a shared VM losing CPU to its host)


@dataclass(frozen=True)
class CpuUse:
    """Cores used over a step's window (CpuMeter): this process, the server's tree, the machine."""

    client_cores: float
    server_cores: float | None
    machine_busy_cores: float
    # Cores the hypervisor gave to other guests while this step ran (counted in machine_busy_cores):
    # on a shared VM this, not our processes, is often what a noisy step lost.
    steal_cores: float = 0.0


# A step in bench/results/*.json, keys in the order they have always had: the measurement's (under
# `target`, the target's label instead of the model), the CPU use, the flags.
STEP_JSON = ("target", "mode", "users", "offered_rps", "seconds", "requests", "failures", "status_5xx", "rps",
             "p50_ms", "p95_ms", "p99_ms", "client_cores", "server_cores", "machine_busy_cores", "first_failure",
             "flags", "steal_cores")


@dataclass(frozen=True)
class Step:
    """One bench step against one target: the load's measurement, the CPU it took, the flags on it."""

    target: str                   # the target's label
    measured: Measurement
    cpu: CpuUse
    flags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        fields = {**asdict(self.measured), **asdict(self.cpu), "target": self.target, "flags": list(self.flags)}
        return {key: fields[key] for key in STEP_JSON}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        """A stored step (old results too: a field they lack takes its default)."""
        cpu = CpuUse(**{f.name: data[f.name] for f in fields(CpuUse) if f.name in data})
        return cls(data["target"], Measurement.from_json(data, model_key="target"), cpu, tuple(data.get("flags", ())))


def bottleneck_flags(cpu: CpuUse, cores: int) -> list[str]:
    """Why a step's throughput may say more about the machine or the client than the server."""
    flags = []
    if cpu.client_cores >= CLIENT_BOUND_CORES:
        flags.append(f"client-bound: the load generator used {cpu.client_cores:.2f} of the 1 core a gevent "
                     "process can use")
    if cpu.steal_cores >= STOLEN:
        flags.append(f"CPU stolen: the hypervisor ran other guests on {cpu.steal_cores:.2f} of this VM's {cores} cores")
    if cpu.machine_busy_cores >= BUSY_MACHINE * cores:
        other = cpu.machine_busy_cores - cpu.client_cores - (cpu.server_cores or 0.0) - cpu.steal_cores
        flags.append(f"cores saturated: {cpu.machine_busy_cores:.2f}/{cores} busy (client {cpu.client_cores:.2f}, "
                     f"server {cpu.server_cores if cpu.server_cores is not None else '?'}, stolen "
                     f"{cpu.steal_cores:.2f}, other processes {max(0.0, other):.2f})")
    return flags
