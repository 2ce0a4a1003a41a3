"""Shared pytest setup: make ``tests/harness.py`` importable from every test folder.

The test folders have no ``__init__.py``; whatever pytest import mode is used,
putting this folder on ``sys.path`` lets any test do ``from harness import ...``.
"""

import os
import sys

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
