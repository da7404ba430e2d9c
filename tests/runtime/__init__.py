"""How the savers run: the fast path, sync bridges, concurrency, shared engines,
statement counts."""
