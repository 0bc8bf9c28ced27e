# Generated from luasched/_async/__init__.py by tools/unasync.py: edit that file, then run the tool.
"""The I/O layer, written once for asyncio: ``tools/unasync.py`` generates ``luasched._sync``."""
