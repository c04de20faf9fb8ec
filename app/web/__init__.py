"""The HTTP plumbing both services share, around their views rather than in them: the
contract's error body (`errors`), the same body for the requests gunicorn refuses before the
application sees them (`server_errors`), the client's address behind trusted proxies
(`client_address`), the rate limits' storage and 429 answer (`ratelimit`), and the builder of
each service's OpenAPI document (`openapi`).

They sit together so that the packages beside this one read as the data flow (ingestion,
queue, store, enrichment, sessions, rollups), and neither service owns what both answer with.
"""
