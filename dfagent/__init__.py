"""dfagent: pin every new TCP connection to the next hop ECMP chose for it."""

__version__ = "0.1.0"
