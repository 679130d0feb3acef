"""The sandbox as the server in the pod's container sees it: user, mounts, read-only root,
privileges, the frontend's channel and worker sockets, and the cgroup limits the kernel enforces."""
from __future__ import annotations

from typing import Any

from stackctl.pod.pod_container import Pod


def sandbox_facts(pod: Pod) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    facts["id"] = pod.exec("id").stdout.strip()
    mounts = pod.exec("cat", "/proc/mounts").stdout.splitlines()
    for target in ("/tmp", "/app/logs", "/"):
        line = next((m for m in mounts if m.split()[1:2] == [target]), "")
        fstype, options = (line.split()[2:4] + ["", ""])[:2]
        # overlay's lowerdir/upperdir/workdir paths say nothing about the sandbox.
        kept = [o for o in options.split(",") if not o.startswith(("lowerdir=", "upperdir=", "workdir="))]
        facts[f"mount {target}"] = f"{fstype} {','.join(kept)}"
    facts["root read-only"] = pod.exec("touch", "/app/.podrun-write-test").returncode != 0
    status = pod.exec("cat", "/proc/1/status").stdout
    facts["NoNewPrivs"] = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("NoNewPrivs")), "?")
    facts["CapEff"] = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("CapEff")), "?")
    logs = pod.all_logs()
    # TorchServe logs the Netty channel of each server; NIO means it fell back from epoll
    # (e.g. a noexec /tmp, where Netty's native library cannot be loaded from).
    facts["frontend channel"] = ("epoll" if "EpollServerSocketChannel" in logs
                                 else "nio" if "NioServerSocketChannel" in logs else "unknown")
    # The limits as the kernel enforces them (cgroup v2, else v1).
    v2 = pod.exec("cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/cpu.max")
    if v2.returncode == 0:
        memory, cpu = v2.stdout.split("\n", 1)
        quota, period = cpu.split()
    else:
        memory = pod.exec("cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
        quota = pod.exec("cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us").stdout
        period = pod.exec("cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us").stdout
    facts["memory limit bytes"] = memory.strip()
    facts["cpu quota/period us"] = f"{quota.strip()}/{period.strip()}"
    facts["worker sockets"] = worker_sockets(pod, logs)
    return facts


def worker_sockets(pod: Pod, logs: str) -> str:
    """unix or tcp: how the frontend talks to its workers. TorchServe logs the worker command line
    (`--sock-type unix|tcp`) only at DEBUG, which the JSON log config (config/log4j2-stdout.xml)
    leaves out, so the kernel's socket tables of the pod's network namespace say it: the workers'
    Unix sockets are named .ts.sock.<port>; TCP workers listen on 9000 and up (0x2328)."""
    if "--sock-type, unix" in logs or ".ts.sock" in pod.exec("cat", "/proc/net/unix").stdout:
        return "unix"
    listening = [line.split() for line in pod.exec("cat", "/proc/net/tcp", "/proc/net/tcp6").stdout.splitlines()[1:]]
    if "--sock-type, tcp" in logs or any(len(f) > 3 and f[3] == "0A" and f[1].endswith(":2328") for f in listening):
        return "tcp"
    return "unknown"
