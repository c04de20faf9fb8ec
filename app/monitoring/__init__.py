"""What an operator scrapes and follows: Prometheus metrics (`/metrics` on both services) and
the request ids that tie a request's log lines to the worker's lines for its events."""
