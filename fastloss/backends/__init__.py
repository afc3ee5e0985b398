"""Backend implementations. Nothing here is public API."""
