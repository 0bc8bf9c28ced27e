"""Pure parts of luasched: nothing here imports redis, asyncio or threading."""
