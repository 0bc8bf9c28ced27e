"""Tools for working on luasched (not shipped in the package)."""
