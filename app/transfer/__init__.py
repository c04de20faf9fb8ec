"""Taking a site's events out and bringing events in: the NDJSON line format of exports and
imports, the import through the queue, and the demo traffic."""
