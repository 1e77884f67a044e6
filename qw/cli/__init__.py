"""Command-line front ends: thin docopt wrappers over the library."""
