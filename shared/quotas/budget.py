"""Reservations in Redis: a tenant's unfinished jobs and its generation-token budgets, checked and
taken in one atomic step at admission, given back exactly once when a job ends.

Why Lua and not the `limits` library (which `api.quotas` uses for the request rate): a budget here is
*reserved* (up to the job's `max_tokens`) and later partly *returned* (what the job did not use),
several limits are taken together or not at all (the unfinished-jobs cap, the minute and the day
budget, for every job of a bulk request at once), and a refund must land exactly once; the library's
strategies count hits and have no all-or-nothing multi-limit acquire with a per-holder refund. One
short script per admission and per batch of endings does it, atomically in Redis, so any number of
API replicas and concurrent submissions can never take more than a budget holds.

Keys (`shared.constants.QUOTA_PREFIX`): `<tenant>:open` (sorted set of unfinished job ids, counted
against the cap), `<tenant>:batch` (its batches' jobs, not counted), `<tenant>:tpm:<minute>` and
`<tenant>:tpd:<day>` (tokens reserved in that UTC minute / day, expiring with it), and the hash `jobs`
(job id -> what it reserved: read and deleted by its one refund). Windows follow the Redis server's
clock, so every replica agrees on them. A bulk admission or refund is one script call with
multi-member commands in chunks, so even 10,000 jobs hold Redis for only a few milliseconds' worth
of commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog

from shared.constants import QUOTA_PREFIX, QUOTA_QUEUE_RETRY_AFTER_S
from shared.errors import InvalidInputError, QueueUnavailableError, QuotaExceededError

__all__ = ["Request", "Usage", "refund", "reserve", "usage"]

log = structlog.get_logger(__name__)

# ARGV[1]: prefix; ARGV[2]: JSON [{t, open, tpm, tpd, track, n, tokens}] per tenant (a limit of -1 is
# unlimited; `track`: the jobs count as unfinished); then (job id, tokens) pairs, tenant after tenant.
# Checks every tenant's limits first and takes nothing unless all pass. Returns {} or
# {kind, tenant index, limit, in use, asked, retry after}. Multi-member calls go in chunks (Lua's stack).
_RESERVE = """
local p = ARGV[1]
local tenants = cjson.decode(ARGV[2])
local now = redis.call('TIME')
local sec = tonumber(now[1])
local minute = math.floor(sec / 60)
local day = math.floor(sec / 86400)
for i, t in ipairs(tenants) do
  if t.track == 1 and t.open >= 0 then
    local open = redis.call('ZCARD', p .. t.t .. ':open')
    if open + t.n > t.open then return {'queue', i, t.open, open, t.n, 0} end
  end
  if t.tokens > 0 and t.tpm >= 0 then
    local used = tonumber(redis.call('GET', p .. t.t .. ':tpm:' .. minute) or '0')
    if used + t.tokens > t.tpm then return {'tpm', i, t.tpm, used, t.tokens, 60 - sec % 60} end
  end
  if t.tokens > 0 and t.tpd >= 0 then
    local used = tonumber(redis.call('GET', p .. t.t .. ':tpd:' .. day) or '0')
    if used + t.tokens > t.tpd then return {'tpd', i, t.tpd, used, t.tokens, 86400 - sec % 86400} end
  end
end
local arg = 3
for _, t in ipairs(tenants) do
  -- a batch's jobs (track 0) draw on the day only: minute 0 in their records names no window
  local in_minute = t.track == 1 and minute or 0
  if t.tokens > 0 then
    if t.track == 1 then
      local tpm = p .. t.t .. ':tpm:' .. minute
      redis.call('INCRBY', tpm, t.tokens)
      redis.call('EXPIRE', tpm, 120)
    end
    local tpd = p .. t.t .. ':tpd:' .. day
    redis.call('INCRBY', tpd, t.tokens)
    redis.call('EXPIRE', tpd, 172800)
  end
  local head = in_minute .. '\t' .. day .. '\t'
  local tail = '\t' .. t.track .. '\t' .. t.t
  local set_key = p .. t.t .. (t.track == 1 and ':open' or ':batch')
  local last = arg + 2 * t.n - 1
  while arg <= last do
    local records, members = {}, {}
    local stop = math.min(last, arg + 1999)
    for k = arg, stop, 2 do
      records[#records + 1] = ARGV[k]
      records[#records + 1] = head .. ARGV[k + 1] .. tail
      members[#members + 1] = sec
      members[#members + 1] = ARGV[k]
    end
    redis.call('HSET', p .. 'jobs', unpack(records))
    redis.call('ZADD', set_key, unpack(members))
    arg = stop + 1
  end
end
return {}
"""

# ARGV[1]: prefix; then (job id, tokens used) pairs. A job's record is read and deleted in one step,
# so each reservation is returned once however often its end is reported. Returns how many were.
_REFUND = """
local p = ARGV[1]
local ids = {}
for k = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[k] end
local done = 0
local back = {}
local leave = {}
for start = 1, #ids, 1000 do
  local chunk = {}
  for k = start, math.min(#ids, start + 999) do chunk[#chunk + 1] = ids[k] end
  local records = redis.call('HMGET', p .. 'jobs', unpack(chunk))
  local found = {}
  for k, raw in ipairs(records) do
    if raw then
      local minute, day, tokens, track, tenant = string.match(raw, '^(%d+)\t(%d+)\t(%d+)\t(%d)\t(.*)$')
      local job = chunk[k]
      local used = tonumber(ARGV[2 * (start + k - 1) + 1])
      found[#found + 1] = job
      local set_key = p .. tenant .. (track == '1' and ':open' or ':batch')
      leave[set_key] = leave[set_key] or {}
      table.insert(leave[set_key], job)
      local unused = tonumber(tokens) - used
      if unused > 0 then
        for _, key in ipairs({p .. tenant .. ':tpm:' .. minute, p .. tenant .. ':tpd:' .. day}) do
          back[key] = (back[key] or 0) + unused
        end
      end
    end
  end
  if #found > 0 then
    redis.call('HDEL', p .. 'jobs', unpack(found))
    done = done + #found
  end
end
for key, members in pairs(leave) do
  for start = 1, #members, 1000 do
    redis.call('ZREM', key, unpack(members, start, math.min(#members, start + 999)))
  end
end
for key, amount in pairs(back) do
  local cur = tonumber(redis.call('GET', key) or '0')
  if cur > 0 then redis.call('DECRBY', key, math.min(amount, cur)) end
end
return done
"""

_USAGE = """
local now = redis.call('TIME')
local sec = tonumber(now[1])
local p = ARGV[1] .. ARGV[2]
return {redis.call('ZCARD', p .. ':open'),
        tonumber(redis.call('GET', p .. ':tpm:' .. math.floor(sec / 60)) or '0'),
        tonumber(redis.call('GET', p .. ':tpd:' .. math.floor(sec / 86400)) or '0')}
"""


@dataclass
class Request:
    """One tenant's part of an admission: its limits (None: unlimited) and its jobs' reservations."""

    tenant: str
    max_queued_jobs: int | None
    tokens_per_minute: int | None
    tokens_per_day: int | None
    #: (job id, tokens reserved) of each job.
    jobs: list[tuple[str, int]] = field(default_factory=list)
    #: Whether the jobs count as unfinished jobs (batches' jobs do not: `shared.quotas.admission`).
    track_open: bool = True


@dataclass(frozen=True)
class Usage:
    """What a tenant holds right now: unfinished jobs, tokens reserved this minute and today."""

    open_jobs: int
    tokens_this_minute: int
    tokens_today: int


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _script(client: redis.Redis, source: str, *args: Any) -> Any:
    try:
        return client.register_script(source)(args=list(args))
    except redis.RedisError as exc:
        raise QueueUnavailableError(f"the broker (Redis) is unavailable: {type(exc).__name__}") from exc


def reserve(client: redis.Redis, requests: Sequence[Request]) -> None:
    """Take every request's jobs and tokens, all or nothing. QuotaExceededError (429, with the seconds
    until it may fit) when a limit would be passed; InvalidInputError (422) when the request alone is
    larger than the limit (it never fits); QueueUnavailableError when Redis is unreachable."""
    active = [r for r in requests if r.jobs]
    if not active:
        return
    tenants = [
        {
            "t": r.tenant,
            "open": _limit(r.max_queued_jobs),
            "tpm": _limit(r.tokens_per_minute),
            "tpd": _limit(r.tokens_per_day),
            "track": 1 if r.track_open else 0,
            "n": len(r.jobs),
            "tokens": sum(tokens for _job_id, tokens in r.jobs),
        }
        for r in active
    ]
    pairs: list[str | int] = [part for r in active for job_id, tokens in r.jobs for part in (job_id, tokens)]
    refused = _script(client, _RESERVE, QUOTA_PREFIX, json.dumps(tenants, separators=(",", ":")), *pairs)
    if not refused:
        return
    kind, _index, limit, in_use, asked, retry = (
        part.decode() if isinstance(part, bytes) else int(part) for part in refused
    )
    raise _refusal(str(kind), int(limit), int(in_use), int(asked), int(retry))


def _refusal(kind: str, limit: int, in_use: int, asked: int, retry: int) -> Exception:
    if kind == "queue":
        if asked > limit:
            return InvalidInputError(
                f"this request submits {asked} jobs; the tenant may have at most {limit} unfinished jobs",
                field="jobs",
                code="too_many_jobs",
            )
        return QuotaExceededError(
            f"too many unfinished jobs: {in_use} of at most {limit} are queued or running; "
            f"this request adds {asked}",
            retry_after_s=QUOTA_QUEUE_RETRY_AFTER_S,
            code="queue_limit_exceeded",
        )
    period = "minute" if kind == "tpm" else "day"
    if asked > limit:
        return InvalidInputError(
            f"this request reserves {asked} generation tokens (max_tokens of its jobs); the tenant's "
            f"budget is {limit} tokens per {period}: lower max_tokens or split the request",
            field="params.max_tokens",
            code="token_budget_too_small",
        )
    return QuotaExceededError(
        f"generation token budget exceeded: {in_use} of {limit} tokens per {period} are reserved; "
        f"this request reserves {asked}",
        retry_after_s=max(1, retry),
        code="token_budget_exceeded",
    )


def refund(client: redis.Redis, used: Sequence[tuple[str, int]]) -> int:
    """Return what ended jobs did not use: (job id, tokens used) each. Each job's reservation is
    returned once however often it is reported (a job never reserved is skipped). How many were.
    Raises QueueUnavailableError when Redis is unreachable."""
    if not used:
        return 0
    args: list[str | int] = [QUOTA_PREFIX]
    for job_id, tokens in used:
        args += [job_id, max(0, int(tokens))]
    return int(_script(client, _REFUND, *args))


def usage(client: redis.Redis, tenant: str) -> Usage:
    """What `tenant` holds in Redis right now."""
    open_jobs, minute, day = _script(client, _USAGE, QUOTA_PREFIX, tenant)
    return Usage(int(open_jobs), int(minute), int(day))
