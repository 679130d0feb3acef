"""`make chaos`: faults on a schedule under steady open-loop load, every request's fate recorded.

    python -m loadtest.chaos                       # a stack of its own (free loopback ports)
    python -m loadtest.chaos --against-serve       # the `make serve` stack (run/)

The load is the load driver's (loadtest/driver.py: Locust users paced open loop, at a fraction of
the measured capacity); the faults (faults.py) hit one model's workers while the other model is
the control. For every request: its status and time, or "unanswered" when the front door's bound
passed without an answer; for every fault, the time to recover (recovery.py). The report
(report.py) goes to reports/chaos/<timestamp>/: summary.md, requests.csv, timeline.png.
What each fault does to a client, and why the bound holds, is in docs/faults.md.
"""
