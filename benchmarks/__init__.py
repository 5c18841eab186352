"""Performance benchmarks, run by hand (see benchmarks/README.md); not collected by pytest."""
