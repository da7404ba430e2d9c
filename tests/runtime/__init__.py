"""How the savers run: fast path, sync bridges, concurrency, shared engines, statement counts."""
