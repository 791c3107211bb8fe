"""fastreg: a fast, trustworthy data registry."""

__version__ = "0.1.0"
