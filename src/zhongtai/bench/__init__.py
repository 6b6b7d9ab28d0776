"""Benchmarks run by `zhongtai bench NAME`; each prints one JSON object of figures with units in the keys."""
