"""Object storage behind one small async interface (see base.Store), with backends for a local
directory, S3-compatible services, read-only HTTP(S) and memory (tests), and wrappers that add
retries and a concurrency limit to any of them."""
