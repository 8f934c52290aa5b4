"""The Lua scripts of the Redis event log: each operation is one atomic round trip.

Keys (``p`` is the deployment's prefix)::

    p:clock                 hash  ms, seq: the last event id's milliseconds and the counter
    p:run:<run>:meta        hash  open ("1"/"0"), thread ("" for none), resumable ("1"/"0")
    p:run:<run>:events      stream of the run's events (fields n, d) and, once closed,
                            an end marker (field end)
    p:run:<run>:cancels     list of the cancel actions requested
    p:thread:<thread>:runs  sorted set of the thread's resumable runs, scored by the time
                            (ms) their log expires (for replay after a Last-Event-ID)
    p:thread:<thread>:live  the same for the thread's other runs (for a thread subscriber
                            to read what was published while it was not yet, or no
                            longer, subscribed)
    p:thread:<thread>:events  stream of the thread-level events (state_update, run_done)
                            of the last few minutes, for the same reason

Channels::

    p:run:<run>             the run's events and its end marker
    p:thread:<thread>       the events of every run on the thread, thread-level events
                            and each run's ``run_done``
    p:ends                  every run's end marker (for subscribers that read at the end:
                            a process subscribes once, not once per run)
    p:cancels               every run's cancel requests (a process executing runs
                            subscribes once)

Event ids are ``"<ms>-<seq>"``: ``ms`` is the larger of Redis's clock and the last id's
milliseconds, ``seq`` the next value of one counter, so ids increase across every run
of the deployment and are valid explicit stream ids. An id is taken and its event
published inside one script, so every channel carries its messages in id order.

Messages published on the channels (parsed by :func:`graphdock.backends.redis.fanout.parse`)::

    e<id> <len(name)> <name><data>   an event (run and thread channels)
    x<id>                            the run's stream is closed (end marker <id>; run channel)
    l                                the run's log is gone (closed while unknown; run channel)
    X<id> <run>                      run <run>'s stream is closed (p:ends)
    L<run>                           run <run>'s log is gone (p:ends)
    c<n> <action> <run>              cancel request number <n> of run <run> (the list's
                                     length after it; p:cancels)
"""

from __future__ import annotations

_CLOCK = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function next_id(clock, now)
  local ms = now
  local last = tonumber(redis.call('HGET', clock, 'ms'))
  if last ~= nil and last >= ms then
    ms = last
  else
    redis.call('HSET', clock, 'ms', string.format('%d', ms))
  end
  return string.format('%d-%d', ms, redis.call('HINCRBY', clock, 'seq', 1))
end

local function thread_event(key, id, name, data, now, ttl)
  redis.call('XADD', key, 'MINID', '~', string.format('%d', now - ttl), id, 'n', name, 'd', data)
  redis.call('PEXPIRE', key, ttl)
end

local function keep(key, member, now, ttl)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', now))
  redis.call('ZADD', key, string.format('%d', now + ttl), member)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end
"""

#: KEYS meta, stream, cancels; ARGV run_id, thread_id or "", resumable "1"/"0", ttl ms,
#: thread key prefix. Returns {1 when the log was (re)started else 0, the cancel actions
#: requested so far}.
OPEN = (
    _CLOCK
    + """
local ttl = tonumber(ARGV[4])
local cancels = redis.call('LRANGE', KEYS[3], 0, -1)
if redis.call('HGET', KEYS[1], 'open') == '1' then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  return {0, cancels}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'open', '1', 'thread', ARGV[2], 'resumable', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[2] ~= '' then
  local set = ':live'
  if ARGV[3] == '1' then
    set = ':runs'
  end
  keep(ARGV[5] .. ARGV[2] .. set, ARGV[1], now_ms(), ttl)
end
return {1, cancels}
"""
)

#: KEYS meta, stream, clock; ARGV name, data, run channel, thread channel prefix, ttl ms.
#: Returns {id, thread_id or ""}, or false when the log is not open (the event is dropped).
PUBLISH = (
    _CLOCK
    + """
local m = redis.call('HMGET', KEYS[1], 'open', 'thread')
if m[1] ~= '1' then
  return false
end
local id = next_id(KEYS[3], now_ms())
redis.call('XADD', KEYS[2], id, 'n', ARGV[1], 'd', ARGV[2])
local message = 'e' .. id .. ' ' .. #ARGV[1] .. ' ' .. ARGV[1] .. ARGV[2]
redis.call('PUBLISH', ARGV[3], message)
if m[2] and m[2] ~= '' then
  redis.call('PUBLISH', ARGV[4] .. m[2], message)
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {id, m[2] or ''}
"""
)

#: KEYS meta, stream, clock, cancels; ARGV run channel, ends channel, thread channel
#: prefix, thread key prefix, run_id, kept ms (resumable), kept ms (others), run_done data,
#: kept ms (thread-level events).
#: Returns 1 when the log was closed now, 0 when it was not open.
CLOSE = (
    _CLOCK
    + """
redis.call('DEL', KEYS[4])
local m = redis.call('HMGET', KEYS[1], 'open', 'thread', 'resumable')
if m[1] ~= '1' then
  if not m[1] then
    redis.call('PUBLISH', ARGV[1], 'l')
    redis.call('PUBLISH', ARGV[2], 'L' .. ARGV[5])
  end
  return 0
end
local n = redis.call('XLEN', KEYS[2])
local now = now_ms()
local id = next_id(KEYS[3], now)
redis.call('XADD', KEYS[2], id, 'end', '1')
local ttl = tonumber(ARGV[7])
if m[3] == '1' then
  ttl = tonumber(ARGV[6])
end
redis.call('HSET', KEYS[1], 'open', '0')
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PUBLISH', ARGV[1], 'x' .. id)
redis.call('PUBLISH', ARGV[2], 'X' .. id .. ' ' .. ARGV[5])
local thread = m[2]
if thread and thread ~= '' then
  local set = ':live'
  if m[3] == '1' then
    set = ':runs'
  end
  keep(ARGV[4] .. thread .. set, ARGV[5], now, ttl)
  if n > 0 then
    local done = next_id(KEYS[3], now)
    thread_event(ARGV[4] .. thread .. ':events', done, 'metadata', ARGV[8], now, tonumber(ARGV[9]))
    redis.call('PUBLISH', ARGV[3] .. thread, 'e' .. done .. ' 8 metadata' .. ARGV[8])
  end
end
return 1
"""
)

#: KEYS clock, thread events; ARGV thread channel, name, data, kept ms. Returns the event's id.
PUBLISH_THREAD = (
    _CLOCK
    + """
local now = now_ms()
local id = next_id(KEYS[1], now)
thread_event(KEYS[2], id, ARGV[2], ARGV[3], now, tonumber(ARGV[4]))
redis.call('PUBLISH', ARGV[1], 'e' .. id .. ' ' .. #ARGV[2] .. ' ' .. ARGV[2] .. ARGV[3])
return id
"""
)

#: KEYS cancels; ARGV cancels channel, action, ttl ms, run_id. Returns the request's number.
REQUEST_CANCEL = """
local n = redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], 'c' .. n .. ' ' .. ARGV[2] .. ' ' .. ARGV[4])
return n
"""

#: KEYS meta, stream; ARGV first id (XRANGE syntax), count, "1" to read entries only
#: when the log is closed. Returns {state} (0: unknown log) or {state, resumable, entries}
#: with state 1 open, 2 closed, and entries as XRANGE returns them.
READ_RUN = """
local m = redis.call('HMGET', KEYS[1], 'open', 'resumable')
if not m[1] then
  return {0}
end
local state = 2
if m[1] == '1' then
  state = 1
end
local resumable = 0
if m[2] == '1' then
  resumable = 1
end
local entries = {}
if not (ARGV[3] == '1' and state == 1) then
  entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])
end
return {state, resumable, entries}
"""

#: KEYS the thread's resumable runs, its other runs, its events; ARGV run key prefix,
#: stream key suffix, first id for the resumable runs, first id for the others and for
#: the thread-level events (XRANGE syntax). Returns the entries from there of every run
#: of the thread still kept and of the thread-level events, stream after stream (each
#: in id order).
READ_THREAD = """
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local out = {}
for i = 1, 2 do
  for _, run in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], now, '+inf')) do
    for _, entry in ipairs(redis.call('XRANGE', ARGV[1] .. run .. ARGV[2], ARGV[2 + i], '+')) do
      out[#out + 1] = entry
    end
  end
end
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], ARGV[4], '+')) do
  out[#out + 1] = entry
end
return out
"""
