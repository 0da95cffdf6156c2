"""The command-line interface: only parses and prints; all work is in the library."""
