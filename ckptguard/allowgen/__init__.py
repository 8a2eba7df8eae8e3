"""Deriving allowlist entries from a library's source, never importing it (see
docs/allowlist.md, "Generating entries from source")."""
