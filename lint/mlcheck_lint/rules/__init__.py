"""Rule families: docs (MLC1xx), deps (MLC2xx), smells (MLC3xx)."""
