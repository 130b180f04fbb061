"""Benchmarks of jboat's hyper-gradient operators against the published JBOAT packages.

Run ``python -m benchmarks --help``. Every configuration runs in its own subprocess (one
venv per framework), so peak RSS is per configuration and the frameworks take turns under
the same machine conditions. Nothing here is a test: the results are numbers to read.
"""
