"""The `kdcache` command line (installed as the package `kdcache.cli`).

Each module adds its commands with `register(app)`; every command only parses options and calls one
library function, so everything the CLI does is also available from Python.
"""
