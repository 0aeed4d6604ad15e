"""Beat's housekeeping: the sweep that recovers what the broker lost, and retention."""
