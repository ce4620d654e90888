"""Notebook → pipeline: the converter (pure) and, beside it, the runners and exporters.

``convert`` reads a notebook and returns a :class:`~.spec.Pipeline` (spec + generated files)
without touching disk or registry; ``runner`` executes a written pipeline and records it
through the API; ``export`` writes jobs for other orchestrators; ``verify`` compares a
pipeline run with a run of its notebook.
"""
