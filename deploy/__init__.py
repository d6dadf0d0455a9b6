"""fedapp on real SuperLink and SuperNode processes: the Python beside the deploy scripts.

Nothing is imported here: `python -m deploy.warm_executor` must start without
loading fedapp's modules (Flower's app loader would reuse them instead of the FAB's).
"""
