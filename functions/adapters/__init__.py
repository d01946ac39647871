"""Adapters of the service's ports; only `functions.bootstrap` wires them."""
