"""The server's own web pages, for people in a browser rather than clients."""
