"""The request API on the worker's web port: read a user's recommendation, post events.

`GET /recommendations/{user}?tenant=T[&fresh=1]`: the user's latest published
recommendation, from the worker that owns the user's partition (any worker forwards to
it: events are keyed by user id, so the owner of the user's `clicks` partition holds the
user's state and recommendations); `fresh=1` scores the user's state now instead, and
publishes nothing.

`POST /events`: a JSON array of events (or `{"events": [...]}`) in the topics' wire
contract, each validated by the worker's own parser and produced to its topic keyed by
user id, as `reckon replay` does; a resend of an accepted event id answers `duplicate`, and
one event the contract refuses (an unpaired surrogate's escape included) is refused alone.

Both follow the bearer-token rules of `/state` (streams/worker/auth.py): 401 without a
known token, 403 for another tenant's data. Every error is one line of JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import faust
import msgspec
from aiohttp.web_protocol import RequestPayloadError
from faust.web import View
from yarl import URL

from reckon.streams.core.settings import Settings
from reckon.streams.kafka.record_batches import partition_for
from reckon.streams.pipeline.contracts import MAX_DEPTH, Invalid, json_document, parse_event
from reckon.streams.pipeline.latest import LatestRecommendations
from reckon.streams.pipeline.processor import BatchProcessor
from reckon.streams.pipeline.routing import ModelRuntime
from reckon.streams.pipeline.state import state_key
from reckon.streams.traffic.replay import topic_for
from reckon.streams.worker.auth import PageAuth, Scope, unauthorized
from reckon.streams.worker.recent_ids import RecentIds
from reckon.streams.worker.web import undecodable_url

MAX_BODY_BYTES = 1024 * 1024        # 1 MiB per POST /events
MAX_EVENTS = 1000                   # events per POST /events
RECENT_IDS = 200_000                # accepted event ids remembered for duplicates
FORWARDED = "X-Reckon-Forwarded"    # set on a forwarded request: its receiver answers, never forwards again
ANSWERED_BY = "X-Reckon-Worker"
FORWARD_TIMEOUT_S = 5.0
GET_PARAMS = frozenset({"tenant", "fresh"})


class _Batch(msgspec.Struct):
    events: list[msgspec.Raw]


_decode_list = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_batch = msgspec.json.Decoder(_Batch).decode


def _error(web: Any, status: int, message: str, **headers: str) -> Any:
    return web.json({"error": message}, status=status, headers=headers or None)


def split_events(body: bytes) -> list[bytes]:
    """A POST body's events, each as the bytes it was sent as (what Kafka gets). Raises
    ValueError with a one-line reason when the body is neither form."""
    try:
        raws = _decode_list(body) if body.lstrip()[:1] == b"[" else _decode_batch(body).events
    except msgspec.DecodeError as exc:
        lenient = _split_leniently(body)
        if lenient is None:
            raise ValueError(f"body must be a JSON array of events or {{\"events\": [...]}}: {exc}") from None
        return lenient
    except RecursionError:       # an event nested deeper than msgspec goes: that one is refused (too_deep)
        lenient = _split_leniently(body)
        if lenient is None:
            raise ValueError(f"body is nested deeper than an event may be ({MAX_DEPTH} levels)") from None
        return lenient
    return [bytes(raw) for raw in raws]


_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')     # strings whole, and the structure


def _split_leniently(body: bytes) -> list[bytes] | None:
    """A body msgspec refused whole, split where the standard allows it: the standard library's
    parser takes what RFC 8259 calls valid JSON that msgspec does not (a `\\ud800` escape with
    no pair, NaN, an event nested past msgspec's depth), so one such event is refused alone
    by the contract, as a worker dead-letters it alone, and the others go on. None when the
    body is not JSON of either form."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    spans = _event_spans(text)
    if spans is None:
        return None
    # The parser checks the body with each event nested past the contract's limit read as
    # null: its own recursion fails on those at a depth that depends on the caller's stack.
    checked, at = [], 0
    for start, end in spans:
        piece = text[start:end]
        checked += [text[at:start], "null" if piece.count("[") + piece.count("{") > MAX_DEPTH else piece]
        at = end
    try:
        whole = json_document("".join(checked) + text[at:])
    except (ValueError, RecursionError):
        return None
    if not (isinstance(whole, list) or (isinstance(whole, dict) and isinstance(whole.get("events"), list))):
        return None
    return [text[start:end].strip().encode("utf-8") for start, end in spans]   # as sent: UTF-8 round-trips


def _event_spans(text: str) -> list[tuple[int, int]] | None:
    """Where each event of `[...]` or `{"events": [...]}` (the last "events" key, the one a
    parser keeps) lies in the text, found without recursion; None when brackets do not balance."""
    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        return None
    inner = 1 if head == "[" else 2           # the depth of the events array's elements
    depth, spans, current, start = 0, [], None, 0
    key, previous = None, None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if token == "[" and depth == inner and (head == "[" or key == "events"):
                current, start = [], match.end()
        elif token in ("]", "}"):
            if current is not None and depth == inner:
                current.append((start, match.start()))
                spans, current = current, None
            depth -= 1
            if depth < 0:
                return None
        elif token == ",":
            if current is not None and depth == inner:
                current.append((start, match.start()))
                start = match.end()
        elif head == "{" and depth == 1 and previous in ("{", ","):       # a key of the body's object
            try:
                key = json.loads(token)
            except ValueError:
                return None
        previous = token
    if depth:
        return None
    return [(a, b) for a, b in spans if text[a:b].strip()]


def topic_of(raw: bytes) -> str:
    """The topic of a posted event, as `reckon replay` sorts a JSONL file's lines."""
    try:
        return topic_for(json_document(raw))
    except (ValueError, RecursionError):
        return "clicks"              # the contract names what is wrong with it


class _Repeated(Exception):
    pass


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Repeated(next(k for k in keys if keys.count(k) > 1))
    return dict(pairs)


def _duplicate_key(raw: bytes) -> Invalid | None:
    """An object in an event that names a key twice: Reckon's parsers take the last value, other
    readers of the topic may take the first, so what was accepted would not be what they read.
    The worker's own path tolerates it (taking the last); what comes in over HTTP is refused."""
    try:
        json.loads(raw, object_pairs_hook=_no_repeats, parse_int=len)    # values unread: any integer goes
    except _Repeated as exc:
        return Invalid("duplicate_key", f"key {str(exc)[:40]!r} appears twice in one object")
    return None


def check_user(settings: Settings, tenant: str, user: str) -> str | None:
    """Why (tenant, user) cannot name a user under the event contract (its limits and the
    tenants served), or None: the contract's own parser judges them as it would an event's."""
    probe = json.dumps({"event_id": "probe", "user_id": user, "item_id": "probe", "action": "view",
                        "ts": time.time(), "tenant": tenant}).encode()
    parsed = parse_event("clicks", probe, None, settings.default_tenant, frozenset(settings.tenants) or None)
    return f"{parsed.reason}: {parsed.detail}" if isinstance(parsed, Invalid) else None


class Asked(NamedTuple):
    """What a valid `GET /recommendations/{user}` asks for."""
    tenant: str
    fresh: bool


def read_request(settings: Settings, auth: PageAuth, request: Any, user: str) -> Asked | tuple[int, str]:
    """A `GET /recommendations/{user}` request's tenant and `fresh`, or why it is refused
    (status, message; 401 answers with its challenge: `refusal`). The worker and the read
    replica (streams/worker/serve.py) judge requests by this one function."""
    scope = auth.scope(request.headers.get("Authorization"))
    if scope is None:
        return 401, ""
    undecodable = undecodable_url(request)
    if undecodable is not None:
        return 400, undecodable
    query = request.query
    unknown = sorted(set(query) - GET_PARAMS)
    if unknown:
        return 400, f"unknown query parameter {unknown[0]!r} (allowed: fresh, tenant)"
    if any(len(query.getall(name)) > 1 for name in GET_PARAMS & set(query)):
        return 400, "each query parameter may be given once"
    fresh = query.get("fresh", "0")
    if fresh not in ("0", "1"):
        return 400, f"fresh must be 0 or 1, not {fresh[:20]!r}"
    tenant = query.get("tenant") or settings.default_tenant
    invalid = check_user(settings, tenant, user)
    if invalid is not None:
        return 400, f"tenant or user: {invalid}"
    if not scope.allows(tenant):
        return 403, "this token does not cover that tenant"
    return Asked(tenant, fresh == "1")


def refusal(web: Any, refused: tuple[int, str]) -> Any:
    status, message = refused
    return unauthorized(web) if status == 401 else _error(web, status, message)


class RecommendationApi:
    """The pages' logic, over the worker's parts (its Faust app, user store, runtime, cache)."""

    def __init__(self, app: faust.App, settings: Settings, auth: PageAuth, users: Any, state_get: Callable,
                 runtime: ModelRuntime, processor: BatchProcessor, latest: LatestRecommendations,
                 stats: Counter, processing: asyncio.Lock) -> None:
        self.app, self.settings, self.auth = app, settings, auth
        self.users = users                    # the user-state Table: its changelog's owners are the users' owners
        self.state_get = state_get            # ((tenant, user), partition) -> state dict or None
        self.runtime, self.processor, self.latest, self.stats = runtime, processor, latest, stats
        # held while a batch runs on its own thread: fresh scoring uses what the batch changes
        self.processing = processing
        self.recent = RecentIds(RECENT_IDS)
        self.tenants = frozenset(settings.tenants) or None

    async def owner(self, user: str) -> tuple[int, str | None]:
        """The user's partition, and the URL of the worker that owns it (None: unknown now,
        e.g. during a rebalance)."""
        partition = await partition_for(self.app.producer._ensure_producer(), "clicks", user.encode())
        changelog = self.users.changelog_topic.get_topic_name()
        for url, topics in self.app.router.table_metadata(self.users.name).items():
            if partition in topics.get(changelog, ()):
                return partition, str(url)
        return partition, None

    async def forward(self, web: Any, request: Any, url: str) -> Any:
        self.stats["api_forwarded"] += 1
        headers = {name: value for name, value in request.headers.items() if name.lower() == "authorization"}
        where = URL(url)
        target = request.url.with_host(where.host or "").with_port(where.port)
        try:
            async with self.app.http_client.get(target, headers={**headers, FORWARDED: "1"},
                                                timeout=FORWARD_TIMEOUT_S) as response:
                return web.bytes(await response.read(), content_type="application/json", status=response.status,
                                 headers={ANSWERED_BY: response.headers.get(ANSWERED_BY, "")})
        except (OSError, TimeoutError) as exc:
            return _error(web, 502, f"the worker that owns this user ({url}) did not answer: "
                          f"{type(exc).__name__}")

    async def get(self, web: Any, request: Any, user: str) -> Any:
        asked = read_request(self.settings, self.auth, request, user)
        if not isinstance(asked, Asked):
            return refusal(web, asked)
        tenant, fresh = asked
        partition, owner = await self.owner(user)
        if owner is not None and owner != str(self.app.conf.canonical_url) and FORWARDED not in request.headers:
            return await self.forward(web, request, owner)
        key = state_key(tenant, user)
        if fresh:
            async with self.processing:
                return self._fresh(web, tenant, user, partition)
        value = self.latest.get(key)
        if value is None:
            # tenant and user were checked above (printable, bounded): safe to name
            return _error(web, 404, f"no recommendation for user {user!r} of tenant {tenant!r} yet",
                          **{ANSWERED_BY: self.settings.worker_name})
        return web.bytes(value, content_type="application/json", headers={ANSWERED_BY: self.settings.worker_name})

    def _fresh(self, web: Any, tenant: str, user: str, partition: int) -> Any:
        try:
            state = self.state_get((tenant, user), partition)
        except ValueError as exc:
            return _error(web, 500, f"this user's stored state cannot be read: {exc}",
                          **{ANSWERED_BY: self.settings.worker_name})
        if state is None:
            return _error(web, 404, "no state for this user", **{ANSWERED_BY: self.settings.worker_name})
        started = time.perf_counter()
        scorer = self.runtime.scorer_for(user)   # A/B routing is by user id, as for batches
        ranked = self.processor.scoring.rank(tenant, state, scorer)
        self.stats["api_fresh_scored"] += 1
        return web.json({"user_id": user, "tenant": tenant, "items": ranked.items, "scores": ranked.scores,
                         "model_version": scorer.version, "arm": self.runtime.arm_of(scorer), "fresh": True,
                         "latency_ms": round((time.perf_counter() - started) * 1000, 3), "ts": time.time()},
                        headers={ANSWERED_BY: self.settings.worker_name})

    async def post(self, web: Any, request: Any) -> Any:
        scope = self.auth.scope(request.headers.get("Authorization"))
        if scope is None:
            return unauthorized(web)
        # A web page can make a browser post text/plain, a form or an untyped blob to a port on
        # loopback without asking first; only JSON is taken, so it cannot inject events.
        if request.headers.get("Content-Type", "").partition(";")[0].strip().lower() != "application/json":
            return _error(web, 415, "Content-Type must be application/json")
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except RequestPayloadError:     # a gzip or deflate body that does not decompress
            encoding = request.headers.get("Content-Encoding", "")[:40]
            return _error(web, 400, f"the body cannot be decoded as its Content-Encoding ({encoding}) says")
        except ConnectionResetError:    # the client went away mid-body: nothing was produced
            return _error(web, 400, "the connection closed before the body was complete")
        if body is None:
            return _error(web, 413, f"body over {MAX_BODY_BYTES} bytes")
        try:
            raws = split_events(body)
        except ValueError as exc:
            return _error(web, 400, str(exc))
        if not raws:
            return _error(web, 400, "no events in the body")
        if len(raws) > MAX_EVENTS:
            return _error(web, 400, f"{len(raws)} events in one request > {MAX_EVENTS}")
        return await self._produce(web, scope, raws)

    async def _produce(self, web: Any, scope: Scope, raws: list[bytes]) -> Any:
        now = time.time()
        results: list[dict] = []
        sends: list[tuple[int, str, Any]] = []          # result index, topic, event
        for index, raw in enumerate(raws):
            topic = topic_of(raw)
            event = parse_event(topic, raw, now, self.settings.default_tenant, self.tenants)
            if not isinstance(event, Invalid):
                event = _duplicate_key(raw) or event
            if isinstance(event, Invalid):
                results.append({"index": index, "status": "rejected", "reason": event.reason, "detail": event.detail})
                continue
            if not scope.allows(event.tenant):
                return _error(web, 403, f"event {index}: this token does not cover tenant {event.tenant[:40]!r}")
            results.append({"index": index, "event_id": event.event_id, "tenant": event.tenant})
            sends.append((index, topic, event))
        producer = self.app.producer
        pending = []
        for index, topic, event in sends:
            claim = (event.tenant, event.event_id)
            if not self.recent.claim(claim):
                results[index]["status"] = "duplicate"
                continue
            try:
                pending.append((index, claim, await producer.send(topic, event.user_id.encode(), raws[index],
                                                                    None, None, None)))
            except Exception as exc:       # not enqueued: a resend may try again
                self.recent.release(claim)
                results[index].update(status="failed", detail=type(exc).__name__)
        for index, claim, delivery in pending:
            try:
                await delivery
            except Exception as exc:       # the broker did not take it: a resend may try again
                self.recent.release(claim)
                results[index].update(status="failed", detail=type(exc).__name__)
            else:
                self.recent.confirm(claim)
                results[index]["status"] = "accepted"
        counts = Counter(r["status"] for r in results)
        for status, count in counts.items():
            self.stats[f"api_events_{status}"] += count
        return web.json({"results": results, **{s: counts[s] for s in ("accepted", "rejected", "duplicate", "failed")}},
                        status=503 if counts["failed"] else 200)


async def read_body(request: Any, limit: int) -> bytes | None:
    """The request body, or None once it is over `limit` bytes (not read further)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def install(app: faust.App, api: RecommendationApi) -> None:
    """`GET /recommendations/{user}` and `POST /events` on `app`'s web port."""

    @app.page("/recommendations/{user}")
    async def recommendations_page(web: Any, request: Any, user: str) -> Any:
        return await api.get(web, request, user)

    class EventsPage(View):
        async def post(self, request: Any) -> Any:
            return await api.post(self.web, request)

    app.page("/events")(EventsPage)
