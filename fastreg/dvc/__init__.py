"""DVC's formats and remote, as fastreg reads them: `.dvc` files, `dvc.lock`, `.dvc/config` and
`.dir` manifests (formats.py), md5 checks (md5.py), and a DVC remote's objects brought into a
fastreg cache, each verified against its md5 (objects.py). Used by the reader of DVC projects
(registry/dvc_reader.py) and by `fastreg migrate` (dvc/migration.py)."""
