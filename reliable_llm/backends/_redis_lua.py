"""The Lua scripts that make every shared decision atomically inside Redis.

One script per decision; each reads Redis ``TIME`` (the one clock of the fleet, in ms) and
the breaker's hash, decides, writes, and answers in one round trip. They are registered once
per client (redis-py's ``Script``: ``EVALSHA``, loading the script again after a ``NOSCRIPT``).

The breaker hash ``KEYS[1]`` holds ``s`` (state: 0 closed, 1 open, 2 half-open), ``f``
(consecutive failures while closed), ``g`` (generation: bumped by every transition, so an
outcome from before a transition is ignored) and ``u`` (open until, Redis ms; only ever
pushed later). ``KEYS[2]`` is the half-open trial lease (``SET NX PX``: its value is the
holder's token, it expires after the per-attempt timeout); ``KEYS[3]`` the model's Retry-After
cooldown (a key whose ``PTTL`` is the time left; only ever lengthened).

Every breaker script answers ``{verdict, state, generation, wait_ms, failures}``.
"""

from __future__ import annotations

__all__ = [
    "ADMIT",
    "FAILURE",
    "LEASE_RELEASE",
    "LEASE_RENEW",
    "NEUTRAL",
    "PEEK",
    "RESET",
    "SUCCESS",
]

# Verdicts of ADMIT (COOLING: rejected while a Retry-After cooldown runs, wait_ms of it left).
ALLOWED, REJECTED, TRIAL, COOLING = 0, 1, 2, 3

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 's', 'g', 'u', 'f')
local s = tonumber(h[1]) or 0
local g = tonumber(h[2]) or 0
local u = tonumber(h[3]) or 0
local f = tonumber(h[4]) or 0
local function left() if u > now then return u - now end return 0 end
-- Open for recovery_ms, times the consecutive openings ('e') when cap_ms > 0 (capped there),
-- plus jitter_ms (the policy's open_time, Envoy's ejection time); never shortened.
local function open(recovery_ms, cap_ms, jitter_ms)
  local e = (tonumber(redis.call('HGET', KEYS[1], 'e')) or 0) + 1
  local ms = recovery_ms
  if cap_ms > 0 then ms = math.min(recovery_ms * e, cap_ms) end
  ms = ms + jitter_ms
  g = g + 1
  s = 1
  f = 0
  if now + ms > u then u = now + ms end
  redis.call('HSET', KEYS[1], 's', s, 'g', g, 'u', u, 'f', f, 'e', e)
  redis.call('DEL', KEYS[2])
end
"""

ADMIT = (
    _PRELUDE
    + """
-- ARGV: lease_ms, token
if s == 1 and now < u then return {1, s, g, u - now, f} end
local cool = redis.call('PTTL', KEYS[3])
if cool > 0 then return {3, s, g, cool, f} end
if s == 0 then return {0, s, g, 0, f} end
if s == 1 then
  s = 2
  g = g + 1
  redis.call('HSET', KEYS[1], 's', s, 'g', g)
end
local token = ARGV[2] .. '@' .. g
if redis.call('SET', KEYS[2], token, 'NX', 'PX', ARGV[1]) then return {2, s, g, 0, f} end
-- Another process holds the trial: rejected, but not for a known time (it may end any moment).
return {1, s, g, 0, f}
"""
)

FAILURE = (
    _PRELUDE
    + """
-- ARGV: generation, token ('' unless a trial), failure_threshold, recovery_ms, cooldown_ms
-- (a 429's or 503's retry hint, '0' for none: the cooldown, never shortened, is set first),
-- max_recovery_ms ('0': the open time does not grow), jitter_ms.
local cap_ms = tonumber(ARGV[6]) or 0
local jitter_ms = tonumber(ARGV[7]) or 0
local cooldown = tonumber(ARGV[5]) or 0
if cooldown > 0 and redis.call('PTTL', KEYS[3]) < cooldown then
  redis.call('SET', KEYS[3], '1', 'PX', cooldown)
end
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[2] then open(tonumber(ARGV[4]), cap_ms, jitter_ms) end
  return {0, s, g, left(), f}
end
if s == 0 and tonumber(ARGV[1]) == g then
  f = redis.call('HINCRBY', KEYS[1], 'f', 1)
  if f >= tonumber(ARGV[3]) then open(tonumber(ARGV[4]), cap_ms, jitter_ms) end
end
return {0, s, g, left(), f}
"""
)

SUCCESS = (
    _PRELUDE
    + """
-- ARGV: generation, token ('' unless a trial)
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[2] then
    redis.call('DEL', KEYS[2])
    g = g + 1
    s = 0
    f = 0
    redis.call('HSET', KEYS[1], 's', s, 'g', g, 'f', f, 'e', 0)
  end
  return {0, s, g, left(), f}
end
if s == 0 and tonumber(ARGV[1]) == g and f > 0 then
  f = 0
  redis.call('HSET', KEYS[1], 'f', 0)
end
return {0, s, g, left(), f}
"""
)

NEUTRAL = (
    _PRELUDE
    + """
-- ARGV: generation, token ('' unless a trial), cooldown_ms ('0' for none). A trial that got
-- no verdict frees the lease for the next one; a retry hint cools the model (never shortened).
local cooldown = tonumber(ARGV[3]) or 0
if cooldown > 0 and redis.call('PTTL', KEYS[3]) < cooldown then
  redis.call('SET', KEYS[3], '1', 'PX', cooldown)
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return {0, s, g, left(), f}
"""
)

PEEK = (
    _PRELUDE
    + """
-- Read the fleet's breaker without changing it (for snapshots).
return {0, s, g, left(), f}
"""
)

LEASE_RELEASE = """
-- KEYS[1]: a single-flight lease; ARGV[1]: the holder's token. Only the holder frees it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RESET = """
-- KEYS: breaker hash, trial lease: close the breaker and forget its failures (a new generation).
local g = tonumber(redis.call('HGET', KEYS[1], 'g')) or 0
redis.call('HSET', KEYS[1], 's', 0, 'g', g + 1, 'f', 0, 'u', 0, 'e', 0)
redis.call('DEL', KEYS[2])
return g + 1
"""

LEASE_RENEW = """
-- KEYS: single-flight leases; ARGV[1]: ms, then each lease's token in KEYS' order. Only the
-- holder prolongs a lease; one round trip renews every lease this process holds.
local renewed = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    renewed = renewed + 1
  end
end
return renewed
"""
