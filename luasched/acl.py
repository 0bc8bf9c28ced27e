"""The rules of a Redis ACL user that runs luasched and nothing else (``acl_rules``), and the
commands they allow. ``luasched.connection`` gives the same names."""

from __future__ import annotations

from .core.keys import Keys

# --- a Redis ACL user limited to luasched ------------------------------------------------------

#: Commands luasched sends itself (scripts, waits, wake-ups, reads, durability, the eviction
#: check's INFO memory, and a schedule's reads of its index and of the server's TIME).
CLIENT_COMMANDS = ("evalsha", "script|load", "blpop", "rpush", "expire", "hget", "hmget", "hgetall",
                   "exists", "xread", "zrange", "lrange", "wait", "info", "zrangebyscore", "zcard", "time")

#: What ``purge`` sends besides: SCAN lists the names of every key in the database (other
#: namespaces' too; an ACL key pattern does not filter it), so only an admin user gets it.
PURGE_COMMANDS = ("scan", "unlink")

#: Commands the Lua scripts call (a test checks every ``redis.call`` in lua/ is listed here):
#: an ACL user is checked for these too, inside the scripts.
SCRIPT_COMMANDS = ("del", "exists", "expire", "get", "hdel", "hexists", "hget", "hgetall", "hincrby", "hlen", "hmget",
                   "hset", "hsetnx", "lindex", "llen", "lpop", "lpush", "lrange", "lrem", "ltrim", "persist",
                   "rpush", "sadd", "scard", "set", "sismember", "smembers", "srandmember", "srem", "time", "xadd",
                   "zadd", "zcard", "zcount", "zpopmin", "zrange", "zrangebyscore", "zrem", "zscore")


#: What redis-py 5+ sends on connecting (a refusal is logged by the ACL). Redis 7.0 and 7.1 refuse
#: a rule naming it (it came in 7.2); Redis 6.2 takes a rule for any subcommand; Valkey knows it.
SETINFO = "client|setinfo"


#: What a Scheduler sends on a server with Redis Functions (luasched.scripts.FUNCTIONS): allowed by
#: the rules for a server whose version is given as 7.0 or later (Redis 6.2 refuses a rule naming
#: them). Without them the user's first FCALL is refused, once, and it sends scripts instead.
FUNCTION_COMMANDS = ("fcall", "function|load")


def _version(version: tuple[int, int] | str | None) -> tuple[int, int] | None:
    if isinstance(version, str):
        try:
            return int(version.split(".")[0]), int((version.split(".") + ["0"])[1])
        except ValueError:
            raise ValueError(f"version {version!r} is not a Redis version like '7.2.4'") from None
    return version


def knows_setinfo(version: tuple[int, int] | str | None) -> bool:
    """Whether a server of Redis ``version`` ((major, minor) or INFO's ``redis_version``) takes
    an ACL rule naming CLIENT SETINFO; None (not known): True, as for all but Redis 7.0/7.1."""
    found = _version(version)
    return found is None or not (7, 0) <= found < (7, 2)


def knows_functions(version: tuple[int, int] | str | None) -> bool:
    """Whether a server of Redis ``version`` has Redis Functions (7.0 and later; Valkey says 7.2.4);
    None (not known): False, so that the rules suit Redis 6.2 too."""
    found = _version(version)
    return found is not None and found >= (7, 0)


def acl_rules(namespace: str | None = None, *, purge: bool = False,
              version: tuple[int, int] | str | None = None) -> str:
    """The ACL rules of a Redis user that can run luasched on ``namespace`` (every namespace
    when None) and nothing else: its keys only, no channels, only the commands luasched sends
    and its scripts call. Use as ``ACL SETUSER <name> on ><password> <rules>``.

    ``version``: the server's Redis version (``INFO server``'s ``redis_version``, or (major,
    minor)). The rules allow ``client|setinfo``, which redis-py sends on every connection (a
    refusal is an entry in ACL LOG), but for Redis 7.0 and 7.1, which reject a rule naming it:
    pass their version. Not given: the rules for any other server (6.2, 7.2 and later, Valkey).
    Given as 7.0 or later, the rules also allow ``fcall`` and ``function|load``: the scripts that
    write then run as Redis Functions (``luasched.scripts``), as they do for a user without an ACL;
    without them they run as scripts, after one refusal in ACL LOG.

    ``purge=True`` adds SCAN and UNLINK, which ``purge`` needs, for an admin user: SCAN shows the
    names (not the contents) of every key in the database, other namespaces' too."""
    keys = f"~{Keys(namespace).prefix}*" if namespace is not None else "~luasched:*"
    wanted = set(CLIENT_COMMANDS) | set(SCRIPT_COMMANDS) | (set(PURGE_COMMANDS) if purge else set())
    if knows_setinfo(version):
        wanted.add(SETINFO)
    if knows_functions(version):
        wanted |= set(FUNCTION_COMMANDS)
    commands = " ".join(f"+{c}" for c in sorted(wanted))
    return f"resetkeys {keys} resetchannels -@all {commands}"
