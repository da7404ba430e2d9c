"""The saver's contract on real databases: conformance, compatibility with the official saver, filters, bad input, operations."""
