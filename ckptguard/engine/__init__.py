"""Rule engine: rules are data (``rules/<family>/<ID>.yaml``); Python checks add logic by id."""
