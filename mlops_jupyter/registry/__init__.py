"""The registry layer: it owns the schema and every SQL statement. Nothing here imports from above."""
