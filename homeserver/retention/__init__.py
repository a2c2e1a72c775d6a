"""Message retention (MSC1763) and redaction purges: which events have
outlived their room's policy, hiding them from clients, and the background
job that purges their content and media (legal holds excepted)."""
