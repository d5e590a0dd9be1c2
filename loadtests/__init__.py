"""Benchmarks and load tests, shipped with the package: ``switchyard bench NAME``.

Each public module is one benchmark with ``main(argv) -> int`` that measures its
baseline in the same run and prints JSON (BENCHMARKS.md); modules starting with
``_`` are their shared parts (services, clusters, the floor).
"""
