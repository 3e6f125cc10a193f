"""The web UI: server-rendered pages under ``/ui``, served by the scheduler itself."""
