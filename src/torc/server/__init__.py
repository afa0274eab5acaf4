"""HTTP only: the app factory, routes, error mapping and the SSE stream."""
