"""Features: definitions and versions, expectations, statistics, point-in-time joins, online stores."""
