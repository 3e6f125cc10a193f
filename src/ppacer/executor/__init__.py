"""The executor and the scheduler's HTTP client."""
