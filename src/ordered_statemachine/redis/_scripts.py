"""The Lua scripts that make each operation atomic on the server.

A machine named N is three keys that share the hash tag ``{N}`` (so they live
in one Redis Cluster slot) and a channel:

- ``<prefix>:{N}``, a hash: ``v`` (the format, 1), ``id`` (random, per
  machine: a machine deleted and created again has another), ``codec``,
  ``kind`` (how ranks compare), ``rank`` and ``text`` (the state), ``seq``
  (transitions so far), ``chain`` (a hash over every transition so far) and
  ``rw`` (the ``seq`` of the last rewind, 0 if none);
- ``<prefix>:{N}:log``, a stream: one entry per transition, whose ID is
  ``<seq>-0``, trimmed to the last ``max_log`` entries;
- ``<prefix>:{N}:causes``, a list: the transitions with a cause that a later
  wait for a passed state is chained to (the ``causes`` of the local machine),
  at most ``max_causes``, each a JSON array ``[prev_rank, prev_text, rank,
  text, cause]``;
- the channel ``<prefix>:{N}``, where each transition's entry is published.

An entry is a JSON array: ``[seq, op, prev_rank, prev_text, rank, text,
cause, chain, rw]``: ``op`` is ``"f"`` (forward) or ``"r"`` (rewind),
``cause`` the JSON of the cause or ``""``, ``chain`` is
``sha1(previous chain | seq | op | rank | text)``, starting from the
machine's id, so that a reader can tell the history it saw from another one,
and ``rw`` the ``seq`` of the last rewind before this entry (0 if none): a
reader whose window was trimmed learns from the oldest entry left whether
the transitions it missed only moved forward.
"""

from __future__ import annotations

from typing import Final

_COMPARE: Final = """
local function cmp_str(a, b)
  if a == b then return 0 end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then if x < y then return -1 end return 1 end
  end
  if #a < #b then return -1 end
  return 1
end
local function cmp_int(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then if na then return -1 end return 1 end
  if na then a, b = string.sub(b, 2), string.sub(a, 2) end
  if #a ~= #b then if #a < #b then return -1 end return 1 end
  return cmp_str(a, b)
end
local function compare(kind, a, b)
  if kind == 'int' then return cmp_int(a, b) end
  return cmp_str(a, b)
end
"""

OPEN: Final = """
-- KEYS: state, log, causes. ARGV: id, codec, kind, rank, text.
-- Creates the machine unless it exists; returns it, with its causes.
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'none' and t ~= 'hash' then return {'foreign'} end
local v = redis.call('HGET', KEYS[1], 'v')
if not v then
  if t == 'hash' then return {'foreign'} end
  redis.call('DEL', KEYS[2], KEYS[3])
  -- The chain starts from the machine's own id: a machine created again
  -- has another history, even with the same transitions.
  redis.call('HSET', KEYS[1], 'v', '1', 'id', ARGV[1], 'codec', ARGV[2],
             'kind', ARGV[3], 'rank', ARGV[4], 'text', ARGV[5], 'seq', '0',
             'chain', ARGV[1], 'rw', '0')
end
local s = redis.call('HMGET', KEYS[1], 'v', 'id', 'codec', 'kind', 'rank',
                     'text', 'seq', 'chain')
return {'ok', s, redis.call('LRANGE', KEYS[3], 0, -1)}
"""

SYNC: Final = """
-- KEYS: state, log, causes. ARGV: seq.
-- The machine, its causes, and the log entries from seq on, at one instant.
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {'missing'} end
if t ~= 'hash' then return {'foreign'} end
local s = redis.call('HMGET', KEYS[1], 'v', 'id', 'codec', 'kind', 'rank',
                     'text', 'seq', 'chain')
if not s[1] then return {'foreign'} end
local entries = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+')) do
  entries[#entries + 1] = e[2][2]
end
return {'ok', s, redis.call('LRANGE', KEYS[3], 0, -1), entries}
"""

MOVE: Final = (
    _COMPARE
    + """
-- KEYS: state, log, causes. ARGV: op ('f' or 'r'), rank, text, cause,
-- max_log, max_causes, channel.
-- Moves the machine forward ('f') or back ('r'), atomically: the server's
-- order of transitions is the order of these calls.
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {'missing'} end
if t ~= 'hash' then return {'foreign'} end
local s = redis.call('HMGET', KEYS[1], 'v', 'kind', 'rank', 'text', 'seq',
                     'chain', 'rw')
if not s[1] then return {'foreign'} end
local op, kind, rank, text = ARGV[1], s[2], s[3], s[4]
local c = compare(kind, ARGV[2], rank)
if c == 0 then return {'equal', s[5]} end
if op == 'f' and c < 0 then return {'backwards', rank, text} end
if op == 'r' and c > 0 then return {'forwards', rank, text} end
local seq = tonumber(s[5]) + 1
local chain = redis.sha1hex(s[6] .. '|' .. seq .. '|' .. op .. '|' .. ARGV[2]
                            .. '|' .. ARGV[3])
local entry = cjson.encode({seq, op, rank, text, ARGV[2], ARGV[3], ARGV[4],
                            chain, tonumber(s[7]) or 0})
redis.call('HSET', KEYS[1], 'rank', ARGV[2], 'text', ARGV[3], 'seq', seq,
           'chain', chain)
if op == 'r' then redis.call('HSET', KEYS[1], 'rw', seq) end
redis.call('XADD', KEYS[2], 'MAXLEN', tonumber(ARGV[5]), seq .. '-0', 'e',
           entry)
if op == 'f' then
  if ARGV[4] ~= '' then
    redis.call('RPUSH', KEYS[3],
               cjson.encode({rank, text, ARGV[2], ARGV[3], ARGV[4]}))
    redis.call('LTRIM', KEYS[3], -tonumber(ARGV[6]), -1)
  end
else
  -- A rewind forgets the transitions it undoes: those that moved above it.
  local kept = {}
  for _, item in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
    if compare(kind, cjson.decode(item)[3], ARGV[2]) <= 0 then
      kept[#kept + 1] = item
    end
  end
  redis.call('DEL', KEYS[3])
  if #kept > 0 then redis.call('RPUSH', KEYS[3], unpack(kept)) end
end
-- An expiry given to the machine holds for all of its keys.
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
redis.call('PUBLISH', ARGV[7], entry)
return {'ok', entry}
"""
)

EXPIRE: Final = """
-- KEYS: state, log, causes. ARGV: milliseconds.
-- Gives the machine (all of its keys) an expiry; 0 if it does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[1]) end
return 1
"""
