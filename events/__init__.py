"""Inbound, pure: CloudEvent envelopes, decoders, the routes schema and the router.

Nothing in this package does I/O; it turns (attributes, data) into typed events and typed
decisions so it can be tested with plain data.
"""
