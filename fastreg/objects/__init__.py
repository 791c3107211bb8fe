"""The data model: digests, file records, trees, metafiles; no I/O beyond what a caller passes in."""
