"""The long-running service: every tenant on its schedule, health and metrics, signals."""
