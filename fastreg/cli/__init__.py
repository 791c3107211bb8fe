"""The command line (`fastreg COMMAND`): main.py is the entry, one module per verb group."""

from fastreg.cli.main import main

__all__ = ["main"]
