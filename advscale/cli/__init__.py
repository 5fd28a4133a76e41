"""The ``advscale`` command line: one small module per subcommand over the library.

Importing this package installs :func:`advscale.errors.install_interrupt_hook`, so a Ctrl-C
that lands while the command line is still being imported (before any command's error boundary
runs) is one ``advscale: error: interrupted`` line and exit 130, like one inside a command.
"""

from advscale.errors import install_interrupt_hook

install_interrupt_hook(only_for_the_cli=False)
