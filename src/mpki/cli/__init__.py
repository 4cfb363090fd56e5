"""The `mpki` command."""
