"""The project: config, metafiles, workspace (stat cache, link/copy checkout), local cache, gc."""
