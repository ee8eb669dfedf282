"""Research harness."""
