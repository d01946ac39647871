"""The service: function targets, wiring and settings here; use cases in `service/`, their
adapters in `adapters/`, and the laptop and operator tools (not shipped) in `cli/`."""
