"""``python -m luasched``: the same command as ``luasched``."""

from luasched.cli import main

main(prog_name="luasched")
