"""The ``nightcramp`` command line: one module per command group, each importing what it needs
when its command runs (numpy, scipy, pydantic, FastAPI …), so that ``nightcramp --help`` answers
at once.

- ``main``: the parser, error handling, ``--version``;
- ``recordings``: ``analyze``, ``simulate``;
- ``live``: ``collect``, ``detect``, ``night close`` (and ``simulate --live``);
- ``local``: ``stack``, ``demo``;
- ``advice``: ``advice``, ``diary``, ``rules``; ``web``: ``serve``, ``users``; ``scoring``: ``scoring``.
"""

from dashboard.cli.main import main

__all__ = ["main"]
