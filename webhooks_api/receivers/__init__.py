"""What protects a receiver, kept in Redis so every worker shares it: the circuit breaker,
the rate limit and the in-flight window. The worker enforces them; the API reads them."""
