"""Pages of the integrations app, one module per page family."""
