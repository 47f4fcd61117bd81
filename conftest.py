"""Test-session settings that must precede every import of SciPy.

scikit-learn's array-API checks (in ``tests/test_common.py``) run only when
``SCIPY_ARRAY_API=1``, and SciPy reads the variable once, when it is first
imported: it is set here, in the root conftest, which pytest loads before
it collects any test module.
"""

import os
import sys

os.environ.setdefault("SCIPY_ARRAY_API", "1")
if "scipy" in sys.modules and os.environ["SCIPY_ARRAY_API"] == "1":
    import scipy._lib._array_api as _scipy_array_api

    if not getattr(_scipy_array_api, "SCIPY_ARRAY_API", True):
        raise RuntimeError(
            "SciPy was imported before conftest.py could set SCIPY_ARRAY_API=1; "
            "run the tests with SCIPY_ARRAY_API=1 in the environment."
        )
