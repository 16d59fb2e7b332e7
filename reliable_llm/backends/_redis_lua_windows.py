"""Lua for the opt-in breaker rules shared by the fleet: rate windows and panic trials.

Same conventions as `_redis_lua` (whose prelude these scripts start with): Redis ``TIME`` is
the one clock, every script answers in one round trip, and a transition bumps the breaker's
generation ``g``.

The sliding window of a model is the hash ``KEYS[4]``, read by the failure-rate and slow-call
rules exactly as `reliable_llm._windows` does in one process (resilience4j's windows):

- ``g``: the generation the window belongs to. A window of an older generation is stale (the
  breaker opened or closed since: each state counts afresh) and is dropped by the next
  outcome, so the scripts of `_redis_lua` need not know about windows.
- count based (the last N calls): a ring of N outcomes ``r0`` .. ``r<N-1>`` (1 failed, 2 slow,
  3 both, 0 neither), the next slot ``n``, and running totals ``c`` (calls), ``f`` (failed)
  and ``s`` (slow): O(1) per outcome whatever N.
- time based (the last span of seconds, in 20 buckets as `_windows.TimeWindow`): the
  newest bucket's index since the epoch ``h`` (bucket width = span / 20, in Redis ms), each
  bucket's counts ``c<i>``, ``f<i>``, ``s<i>`` (slot ``i`` = index mod 20), and running
  totals ``c``, ``f``, ``s`` from which the buckets that slide out are subtracted as Redis
  time moves on. The hash expires one span after its last write (everything in it is out
  of the window by then).
"""

from __future__ import annotations

from reliable_llm.backends._redis_lua import _PRELUDE

__all__ = ["PANIC", "WINDOW_OUTCOME", "WINDOW_PEEK"]

_WINDOW = """
-- The window's calls, failed and slow calls after adding (failed, slow) when add is true.
-- kind: 'c' (count based, size calls) or 't' (time based, size = span in ms).
local function window(add, failed, slow, kind, size)
  local wg = tonumber(redis.call('HGET', KEYS[4], 'g'))
  if wg ~= g then
    if not add then return 0, 0, 0 end
    redis.call('DEL', KEYS[4])
    redis.call('HSET', KEYS[4], 'g', g)
  end
  if kind == 'c' then
    local w = redis.call('HMGET', KEYS[4], 'n', 'c', 'f', 's')
    local n = tonumber(w[1]) or 0
    local c = tonumber(w[2]) or 0
    local fc = tonumber(w[3]) or 0
    local sc = tonumber(w[4]) or 0
    if not add then return c, fc, sc end
    local old = tonumber(redis.call('HGET', KEYS[4], 'r' .. n))
    if old == nil then
      c = c + 1
    else
      fc = fc - old % 2
      sc = sc - math.floor(old / 2)
    end
    fc = fc + failed
    sc = sc + slow
    redis.call('HSET', KEYS[4], 'r' .. n, failed + 2 * slow, 'n', (n + 1) % size,
      'c', c, 'f', fc, 's', sc)
    return c, fc, sc
  end
  -- Time based: slide the head bucket to now, subtracting the buckets that fall out (at most
  -- 20, usually none or one), as `_windows.TimeWindow._advance` does.
  local index = math.floor(now / (size / 20))
  local w = redis.call('HMGET', KEYS[4], 'h', 'c', 'f', 's')
  local head = tonumber(w[1])
  local c = tonumber(w[2]) or 0
  local fc = tonumber(w[3]) or 0
  local sc = tonumber(w[4]) or 0
  local moved = false
  if head == nil then
    head = index
    moved = true
  elseif index > head then
    for stale = head + 1, math.min(index, head + 20) do
      local slot = stale % 20
      local b = redis.call('HMGET', KEYS[4], 'c' .. slot, 'f' .. slot, 's' .. slot)
      if b[1] then
        c = c - (tonumber(b[1]) or 0)
        fc = fc - (tonumber(b[2]) or 0)
        sc = sc - (tonumber(b[3]) or 0)
        redis.call('HDEL', KEYS[4], 'c' .. slot, 'f' .. slot, 's' .. slot)
      end
    end
    head = index
    moved = true
  end
  if add then
    local slot = head % 20
    c = c + 1
    fc = fc + failed
    sc = sc + slow
    redis.call('HINCRBY', KEYS[4], 'c' .. slot, 1)
    if failed == 1 then redis.call('HINCRBY', KEYS[4], 'f' .. slot, 1) end
    if slow == 1 then redis.call('HINCRBY', KEYS[4], 's' .. slot, 1) end
    redis.call('HSET', KEYS[4], 'h', head, 'c', c, 'f', fc, 's', sc)
    redis.call('PEXPIRE', KEYS[4], math.ceil(size))
  elseif moved then
    redis.call('HSET', KEYS[4], 'h', head, 'c', c, 'f', fc, 's', sc)
  end
  return c, fc, sc
end
"""

WINDOW_OUTCOME = (
    _PRELUDE
    + _WINDOW
    + """
-- An ordinary (closed-state, not a trial) call's outcome under the window rules.
-- ARGV: generation, failed (0/1), slow (0/1), cooldown_ms ('0' for none: set first, never
-- shortened), failure_threshold, recovery_ms, max_recovery_ms ('0': no growth), jitter_ms,
-- failure_rate_threshold ('' for none), slow_call_rate_threshold ('' when latency is
-- ignored), minimum_number_of_calls, window kind ('c' or 't'), window size (calls, or ms).
-- Answers {0, state, generation, wait_ms, failures, window calls, failed, slow}.
local cooldown = tonumber(ARGV[4]) or 0
if cooldown > 0 and redis.call('PTTL', KEYS[3]) < cooldown then
  redis.call('SET', KEYS[3], '1', 'PX', cooldown)
end
if s ~= 0 or tonumber(ARGV[1]) ~= g then
  -- Admitted before a transition: the window it belonged to is gone.
  local c, fc, sc = window(false, 0, 0, ARGV[12], tonumber(ARGV[13]))
  return {0, s, g, left(), f, c, fc, sc}
end
local failed = tonumber(ARGV[2])
local slow = tonumber(ARGV[3])
if failed == 1 then
  f = redis.call('HINCRBY', KEYS[1], 'f', 1)
elseif f > 0 then
  f = 0
  redis.call('HSET', KEYS[1], 'f', 0)
end
local c, fc, sc = window(true, failed, slow, ARGV[12], tonumber(ARGV[13]))
local rate = tonumber(ARGV[9])
local slow_rate = tonumber(ARGV[10])
local opens = false
if c >= tonumber(ARGV[11]) then
  opens = (rate ~= nil and fc * 100 >= rate * c) or (slow_rate ~= nil and sc * 100 >= slow_rate * c)
end
-- Without a failure rate (only the slow-call rule) the consecutive rule still holds.
if not opens and failed == 1 and rate == nil and f >= tonumber(ARGV[5]) then opens = true end
if opens then
  open(tonumber(ARGV[6]), tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0)
  redis.call('DEL', KEYS[4])
  c, fc, sc = 0, 0, 0
end
return {0, s, g, left(), f, c, fc, sc}
"""
)

WINDOW_PEEK = (
    _PRELUDE
    + _WINDOW
    + """
-- Read the breaker and its window without changing them (for snapshots).
-- ARGV: window kind ('c' or 't'), window size (calls, or ms).
local c, fc, sc = window(false, 0, 0, ARGV[1], tonumber(ARGV[2]))
return {0, s, g, left(), f, c, fc, sc}
"""
)

PANIC = (
    _PRELUDE
    + """
-- A panic trial (Envoy's panic mode: most of the route is open): an open breaker ends its open
-- window now and goes half-open; the trial is still the fleet's one lease.
-- ARGV: lease_ms, token. Answers as ADMIT does. A Retry-After cooldown is still respected.
local cool = redis.call('PTTL', KEYS[3])
if cool > 0 then return {3, s, g, cool, f} end
if s == 0 then return {0, s, g, 0, f} end
if s == 1 then
  s = 2
  g = g + 1
  u = now
  redis.call('HSET', KEYS[1], 's', s, 'g', g, 'u', u)
end
local token = ARGV[2] .. '@' .. g
if redis.call('SET', KEYS[2], token, 'NX', 'PX', ARGV[1]) then return {2, s, g, 0, f} end
return {1, s, g, 0, f}
"""
)
