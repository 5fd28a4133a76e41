"""The ``advscale`` command line: one small module per subcommand over the library."""
