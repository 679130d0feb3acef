"""Free loopback ports for test and bench servers stay out of the kernel's ephemeral range, where an
outgoing connection could take one between the check and the server's bind."""
from __future__ import annotations

import socket

from stackctl.serve.native import EPHEMERAL_RANGE, Ports, free_port


def ephemeral_low() -> int:
    return int(EPHEMERAL_RANGE.read_text().split()[0])


def test_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    for _ in range(20):
        port = free_port()
        assert port < ephemeral_low()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_free_port_skips_what_it_is_told_to_avoid() -> None:
    taken = frozenset(free_port() for _ in range(5))
    assert all(free_port(taken) not in taken for _ in range(20))


def test_stack_ports_are_distinct_and_grpc_ports_free() -> None:
    ports = Ports.free()
    grpc = (ports.worker_base + 500, ports.worker_base + 501)  # TS_GRPC_*_PORT in NativeStack
    listeners = [ports.inference, ports.management, ports.metrics, ports.prometheus, ports.torchserve_inference, *grpc]
    assert len(set(listeners)) == len(listeners)
    assert all(port < ephemeral_low() for port in listeners)
