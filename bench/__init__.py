"""`make bench` / `make tune`: the stack measured against its in-process limit and a FastAPI peer.

Kept import-free: bench.run and bench.tune must import Locust (which monkey-patches sockets for
gevent) before anything else opens a socket.
"""
