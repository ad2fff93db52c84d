"""The ``hayhooks`` command line: ``hayhooks.cli.main:main`` is the console script."""
