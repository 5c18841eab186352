"""BASELINES for the benchmarks (not nectarloss): the seed designs, written eagerly."""
