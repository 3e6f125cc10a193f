"""The scheduler: DAG-run watcher, task scheduler and the HTTP API."""
