"""The `local` backend: kfp.local, one process per run."""
