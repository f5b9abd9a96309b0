"""HTTP plumbing shared by every route: the error renderer, middleware, connection limits and
drain, the operations routes (health, readiness, metrics) and the playground page."""
