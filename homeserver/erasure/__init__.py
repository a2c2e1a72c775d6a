"""Erasure (issue 22, point 5): what an erased user's messages look like to
others (`content.py`), and the admin job that redacts all of a user's
events (`redact_job.py`)."""
