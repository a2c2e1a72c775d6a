"""Running as several processes that behave as one server (issue: scale-out)."""
