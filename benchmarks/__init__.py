"""Side-by-side benchmark of our saver and the official AsyncPostgresSaver (issue 6)."""
