"""The scheduler's HTTP face: the adapter, the API's handlers, metrics, health, token and docs.

Nothing here decides anything: handlers call the scheduler's public methods
(:mod:`ppacer.scheduler.core`) and its read layer; :mod:`ppacer.app` mounts it all.
"""
