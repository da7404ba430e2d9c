"""The saver's contract on real databases: conformance, the official saver's reading
of our rows, filters, bad input, operations."""
