"""Beat's housekeeping: the sweep that recovers what the broker lost, and retention; and
the chunks of bulk retry jobs, which run on the same maintenance queue."""
