"""The `dfagent` command line: a client of the API plus offline commands (decode, lab, bench)."""
