"""fastreg ui: a local, read-only web view of a registry (see docs/cli.md, `fastreg ui`)."""
