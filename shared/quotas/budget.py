"""Reservations in Redis: a tenant's unfinished jobs and its generation-token budgets, checked and
taken in one atomic step at admission, given back exactly once when a job ends.

Why Lua and not the `limits` library (which `api.quotas` uses for the request rate): a budget here is
*reserved* (up to the job's `max_tokens`) and later partly *returned* (what the job did not use),
several limits are taken together or not at all (the unfinished-jobs cap, the minute and the day
budget, for every job of a bulk request at once), and a refund must land exactly once; the library's
strategies count hits and have no all-or-nothing multi-limit acquire with a per-holder refund. One
short script per admission and per batch of endings does it, atomically in Redis, so any number of
API replicas and concurrent submissions can never take more than a budget holds.

Keys (`shared.constants.QUOTA_PREFIX`): `<tenant>:open` (sorted set of unfinished job ids),
`<tenant>:tpm:<minute>` and `<tenant>:tpd:<day>` (tokens reserved in that UTC minute / day, expiring
with it), `job:<id>` (what the job reserved: read and deleted by its one refund). Windows follow the
Redis server's clock, so every replica agrees on them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog

from shared.constants import QUOTA_PREFIX, QUOTA_QUEUE_RETRY_AFTER_S, QUOTA_RESERVATION_TTL_S
from shared.errors import InvalidInputError, QueueUnavailableError, QuotaExceededError

__all__ = ["Request", "Usage", "refund", "reserve", "usage"]

log = structlog.get_logger(__name__)

# ARGV[1]: JSON {p: prefix, ttl: record ttl, tenants: [{t, open, tpm, tpd, track, jobs: [[id, tokens]]}]}
# (a limit of -1 is unlimited; `track` = count the jobs as unfinished). Checks every tenant's limits
# first, takes nothing unless all pass. Returns {} or {kind, tenant index, limit, in use, asked, retry}.
_RESERVE = """
local req = cjson.decode(ARGV[1])
local now = redis.call('TIME')
local sec = tonumber(now[1])
local minute = math.floor(sec / 60)
local day = math.floor(sec / 86400)
local p = req.p
for i, t in ipairs(req.tenants) do
  local n = #t.jobs
  local tokens = 0
  for _, j in ipairs(t.jobs) do tokens = tokens + j[2] end
  t.tokens = tokens
  if t.track == 1 and t.open >= 0 then
    local open = redis.call('ZCARD', p .. t.t .. ':open')
    if open + n > t.open then return {'queue', i, t.open, open, n, 0} end
  end
  if tokens > 0 and t.tpm >= 0 then
    local used = tonumber(redis.call('GET', p .. t.t .. ':tpm:' .. minute) or '0')
    if used + tokens > t.tpm then return {'tpm', i, t.tpm, used, tokens, 60 - sec % 60} end
  end
  if tokens > 0 and t.tpd >= 0 then
    local used = tonumber(redis.call('GET', p .. t.t .. ':tpd:' .. day) or '0')
    if used + tokens > t.tpd then return {'tpd', i, t.tpd, used, tokens, 86400 - sec % 86400} end
  end
end
for _, t in ipairs(req.tenants) do
  local open_key = p .. t.t .. ':open'
  if t.tokens > 0 then
    local tpm = p .. t.t .. ':tpm:' .. minute
    local tpd = p .. t.t .. ':tpd:' .. day
    redis.call('INCRBY', tpm, t.tokens)
    redis.call('EXPIRE', tpm, 120)
    redis.call('INCRBY', tpd, t.tokens)
    redis.call('EXPIRE', tpd, 172800)
  end
  for _, j in ipairs(t.jobs) do
    if t.track == 1 then redis.call('ZADD', open_key, sec, j[1]) end
    local record = cjson.encode({t.t, minute, day, j[2], t.track})
    redis.call('SET', p .. 'job:' .. j[1], record, 'EX', req.ttl)
  end
end
return {}
"""

# ARGV[1]: prefix; then (job id, tokens used) pairs. A job's record is read and deleted in one step,
# so each reservation is returned once however often its end is reported. Returns how many were.
_REFUND = """
local p = ARGV[1]
local done = 0
for i = 2, #ARGV, 2 do
  local key = p .. 'job:' .. ARGV[i]
  local raw = redis.call('GET', key)
  if raw then
    redis.call('DEL', key)
    local r = cjson.decode(raw)
    if r[5] == 1 then redis.call('ZREM', p .. r[1] .. ':open', ARGV[i]) end
    local back = r[4] - tonumber(ARGV[i + 1])
    if back > 0 then
      for _, k in ipairs({p .. r[1] .. ':tpm:' .. r[2], p .. r[1] .. ':tpd:' .. r[3]}) do
        local cur = tonumber(redis.call('GET', k) or '0')
        if cur > 0 then redis.call('DECRBY', k, math.min(back, cur)) end
      end
    end
    done = done + 1
  end
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
    payload = {
        "p": QUOTA_PREFIX,
        "ttl": QUOTA_RESERVATION_TTL_S,
        "tenants": [
            {
                "t": r.tenant,
                "open": _limit(r.max_queued_jobs),
                "tpm": _limit(r.tokens_per_minute),
                "tpd": _limit(r.tokens_per_day),
                "track": 1 if r.track_open else 0,
                "jobs": [[job_id, tokens] for job_id, tokens in r.jobs],
            }
            for r in requests
            if r.jobs
        ],
    }
    if not payload["tenants"]:
        return
    refused = _script(client, _RESERVE, json.dumps(payload, separators=(",", ":")))
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
