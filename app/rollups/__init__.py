"""Aggregation: workers turn stored batches into tallies, one compactor adds them into the
hour, day and week rollups `/stats` reads, and Redis keeps the last minutes for realtime."""
