"""mobiprox_lab: a workbench for dynamic approximate computing in on-device deep learning."""

__version__ = "0.1.0"
