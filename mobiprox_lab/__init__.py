"""mobiprox_lab: a workbench for dynamic approximate computing in on-device deep learning."""

from . import jitcache

__version__ = "0.1.0"

jitcache.guard()  # before any cached Numba kernel loads: a changed callee must not run stale
