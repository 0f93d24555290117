"""Development helpers: the end-to-end demo (``smsq demo``) and the private redis-server that
the demo, the tests and the benchmark start."""
