"""One delivery attempt: the attempt itself, its headers and signatures, the backoff,
the hardened HTTP client, and the subscription's health after it."""
