"""Outbound: the pipeline catalog (compile, content hash) and the backends that run pipelines."""
