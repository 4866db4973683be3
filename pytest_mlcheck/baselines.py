"""Baseline files (placeholder until the metric_regression work lands)."""


def finish_baselines(session, state):
    """List and prune unused baseline entries."""
