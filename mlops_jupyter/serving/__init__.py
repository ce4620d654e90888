"""The HTTP server of `mlops serve`: online features and predictions, behind bearer tokens.

``tokens`` and ``request_log`` import nothing heavy; ``app`` imports Starlette and is loaded
only when a server starts.
"""
