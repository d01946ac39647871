"""The `kfp` backend: a Kubeflow Pipelines cluster through kfp.Client."""
