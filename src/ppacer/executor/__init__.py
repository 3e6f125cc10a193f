"""The executor: poll loop (executor), workers, runner, reporter and supervisor."""
