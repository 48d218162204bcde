"""The allocator policy the timings run under (``kernels.retain_freed_memory``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mobiprox_lab import kernels

# two 8 MiB buffers made, written and freed four times: with glibc's defaults memory goes back
# to the kernel on free (unmapped blocks, trimmed heap top), and every round page-faults
# (measured: ~1,000 faults per round on this machine, 4,096 pages written)
_CYCLES = """
import json, resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from mobiprox_lab.kernels import retain_freed_memory
    print(retain_freed_memory(), file=sys.stderr)
faults = []
for _ in range(4):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(2 << 20, np.float32)
    b = np.ones(2 << 20, np.float32)
    del a, b
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps(faults))
"""


def _faults(mode: str) -> list[int]:
    done = subprocess.run([sys.executable, "-c", _CYCLES, mode], capture_output=True,
                          text=True, check=True, timeout=120)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def glibc():
    if kernels.retain_freed_memory() != "glibc-retain":
        pytest.skip("not glibc: the policy is a no-op")


def test_policy_is_set_once_and_named(glibc):
    assert kernels.retain_freed_memory() == "glibc-retain"
    assert kernels.retain_freed_memory() == "glibc-retain"  # idempotent
    assert kernels.allocator_policy() == "glibc-retain"


def test_freed_buffers_are_reused_without_page_faults(glibc):
    """With the policy, rounds after the first reuse the freed 16 MiB without a page fault;
    with glibc's defaults the same rounds fault pages back in."""
    pages = 2 * (8 << 20) // 4096
    default, retained = _faults("default"), _faults("retain")
    assert min(default[1:]) > pages // 8, default
    assert max(retained[1:]) < pages // 80, retained
