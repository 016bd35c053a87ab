"""The HTTP edge: webhooks, SSE, the proxy route, health and metrics. It owns no tables: every
request becomes a gRPC call to the service that owns the data."""
