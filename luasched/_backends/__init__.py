"""What differs between the two front ends, side by side: ``threads`` (luasched.Scheduler and
luasched.Processor) and ``aio`` (luasched.aio), with the same names in both."""
