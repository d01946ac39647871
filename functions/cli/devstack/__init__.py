"""The embedded stack on one machine: what `kfp-trigger dev` and `demo` run."""
