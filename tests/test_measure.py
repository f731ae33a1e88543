import time

import torch

from deqbench.measure import timed


def test_cpu_time_leaves_out_the_time_the_process_waits():
    """The claims' cost condition reads CPU time because a shared machine's load shows in
    wall time only: a region that waits 0.3 s costs wall time and almost no CPU time."""
    with timed(torch.device("cpu")) as waiting:
        time.sleep(0.3)
    assert waiting["seconds"] >= 0.3 and waiting["cpu_seconds"] < 0.05
    with timed(torch.device("cpu")) as working:
        sum(i * i for i in range(2_000_000))
    assert 0 < working["cpu_seconds"] <= working["seconds"] + 0.01
