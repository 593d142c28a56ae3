"""Contract tests written once per protocol and run against every implementation.

Each module here holds a mixin test class (``document_index.DocumentIndexContract``, …); a
concrete test module subclasses it and provides the fixture the mixin asks for.
"""

from pathlib import Path

import pytest

# The mixins are imported by test modules, not collected: have pytest rewrite their asserts.
pytest.register_assert_rewrite(
    *(f"{__name__}.{path.stem}" for path in Path(__file__).parent.glob("[!_]*.py")))
