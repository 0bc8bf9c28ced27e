"""The I/O layer, written once for asyncio: ``tools/unasync.py`` generates ``luasched._sync``."""
