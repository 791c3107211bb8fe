"""DVC registries read as they are: `.dvc` files, `dvc.lock` and `.dir` manifests from Git, the
bytes from the DVC remote, every one verified against its md5 (formats.py, md5.py, objects.py),
behind the same reader interface as a fastreg registry (reader.py)."""
