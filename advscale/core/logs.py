"""Library log lines through :mod:`logging`, never straight to stderr.

Library modules log with ``logging.getLogger(__name__)``; the command line installs the one
stderr handler (``advscale CMD: message``; :mod:`advscale.cli.logs`) and a notebook sees what
its own logging configuration shows. :func:`log_line` adapts the older one-line callbacks
(``log=``) that wrote ``advscale CMD: ...`` lines themselves. Torch-free.
"""

from __future__ import annotations

import logging
import re

_PREFIX = re.compile(r"^advscale [\w-]+(?: [\w-]+)?: ")


def log_line(logger: logging.Logger, message: str) -> None:
    """Log one human line: without its ``advscale CMD:`` prefix (the handler adds it), at
    warning level when it says ``warning:``, else at info level."""
    text = _PREFIX.sub("", message.rstrip("\n"), count=1)
    if text.startswith("warning:"):
        logger.warning(text)
    else:
        logger.info(text)
