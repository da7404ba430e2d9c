"""No database: plans driven with recorded rows, statements compiled per dialect."""
