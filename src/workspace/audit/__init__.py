"""The append-only, hash-chained audit log: writer, flush hook, verifier, read side."""
