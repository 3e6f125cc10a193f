"""The version of this ppacer, stored with every row it writes (a leaf: imports nothing)."""

__version__ = "0.1.0"
