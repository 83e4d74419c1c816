"""Live view of run and campaign files (issue 12): model (data), panels, window, live helper."""
