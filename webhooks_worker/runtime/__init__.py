"""What the pool needs of ours: gevent cooperation, the deadline watchdog, prepared
statements, observability, the heap freeze, and the Flower launcher."""
