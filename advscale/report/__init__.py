"""The study report: figures (PNG, matplotlib Agg) and one self-contained report.html.

``advscale.report`` is also the public API function (:func:`advscale.api.report`). Once this
package is imported, Python binds the name ``advscale.report`` to the package; so that the API
keeps working, the package itself is callable: ``advscale.report(...)`` is
:func:`advscale.report.command.report` either way.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableReportPackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from advscale.report.command import report

        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableReportPackage
