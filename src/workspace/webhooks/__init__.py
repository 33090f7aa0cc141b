"""Signed webhooks: per project or tenant-wide, sent as background jobs after the change commits."""
