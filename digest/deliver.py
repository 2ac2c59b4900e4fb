"""Deliver: the ledger loop. Pending deliveries go out in batches and are recorded.

The deliveries table is the source of truth. The loop pages through the pending rows
of a digest and hands each batch to a worker: one of `concurrency` threads, or a single
one for SMTP, whose transport spreads each batch over its `concurrency` connections
itself. A worker sends its batch, records what happened in one transaction as soon as
the answers are in, and retries the temporary failures with backoff.

A run can be killed at any moment and run again: only pending rows are sent, so each
subscriber gets the digest once. The one window is a message the server accepted just
before its ledger write -- at most one batch per worker, so never more than one batch
per connection -- which a re-run sends again. The outbox rewrites the same file, so for
it even that is harmless.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from threading import Event, Lock, Thread

from sqlalchemy.engine import Engine

from digest import store
from digest.errors import DeliveryError
from digest.lease import owner_name
from digest.mail.message import MessageTemplate
from digest.mail.ratelimit import Pacer, TokenBucket
from digest.mail.transport import Left, Mailing, Outcome, Transport, failed, skipped
from digest.models import DeliveryResult, Subscriber
from digest.settings import DeliverySettings

log = logging.getLogger(__name__)

_RNG = random.Random()
_KEPT_ERRORS = 100  # a report keeps this many error lines; memory must not grow with a list


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard and how fast to send: batches, parallelism, rate, retries, bounces."""

    batch_size: int = 100
    concurrency: int = 1
    rate_limit: float = 0.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 300.0
    bounce_threshold: int = 3
    # How long a claim on ledger rows lasts unless renewed: a sender that dies stops
    # renewing, and its unsent rows go to another sender after this long.
    claim_seconds: float = 60.0
    test_mode: bool = False

    @classmethod
    def from_settings(cls, delivery: DeliverySettings) -> DeliveryPolicy:
        return cls(
            batch_size=delivery.batch_size,
            concurrency=delivery.concurrency,
            rate_limit=delivery.rate_limit,
            retries=delivery.retries,
            backoff=delivery.backoff,
            backoff_max=delivery.backoff_max,
            bounce_threshold=delivery.bounce_threshold,
            claim_seconds=delivery.claim_seconds,
            test_mode=delivery.test_mode,
        )


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one run did. `deferred` failed only temporarily and stay pending for a re-run."""

    sent: int
    failed: int
    skipped: int
    errors: tuple[str, ...] = ()
    deferred: int = 0
    waited: float = 0.0  # seconds spent (or, in test mode, not spent) in backoff and rate limit
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number `attempt` (1-based).

    Exponential (initial, 2x, 4x ...) up to `maximum`, with jitter over the upper half so
    parallel workers do not retry in step; a server's Retry-After is a floor, honoured
    up to `maximum`.
    """
    ceiling = min(maximum, initial * 2 ** (attempt - 1))
    delay: float = ceiling / 2 + (rng or _RNG).uniform(0, ceiling / 2)
    if retry_after:
        delay = max(delay, min(retry_after, maximum))
    return delay


class _Tally:
    """Running totals, shared by the workers; `report()` is a consistent snapshot."""

    def __init__(self, skipped: int, pacer: Pacer) -> None:
        self.sent = self.failed = self.deferred = 0
        self.skipped = skipped
        self.errors: list[str] = []
        self._pacer = pacer
        self._started = time.monotonic()
        self._lock = Lock()

    def add(self, pairs: Sequence[tuple[Subscriber, Outcome]], *, deferred: bool) -> None:
        with self._lock:
            for subscriber, outcome in pairs:
                if deferred:
                    self.deferred += 1
                elif outcome.status == "sent":
                    self.sent += 1
                    continue
                elif outcome.status == "skipped":
                    self.skipped += 1
                    continue
                else:
                    self.failed += 1
                if len(self.errors) < _KEPT_ERRORS:
                    self.errors.append(f"{subscriber.email}: {outcome.detail}")

    def report(self) -> DeliveryReport:
        with self._lock:
            return DeliveryReport(
                sent=self.sent,
                failed=self.failed,
                skipped=self.skipped,
                errors=tuple(self.errors),
                deferred=self.deferred,
                waited=self._pacer.waited,
                elapsed=time.monotonic() - self._started,
            )


class _Sender:
    """Sends one batch through the transport, records it, retries what failed for now."""

    def __init__(
        self,
        transport: Transport,
        mailing: Mailing | Callable[[Subscriber], Mailing | None],
        policy: DeliveryPolicy,
        pacer: Pacer,
        tally: _Tally,
        record: Callable[[list[DeliveryResult], dict[int, Left]], None],
        *,
        then: str = "Undelivered messages stay pending; run `digest send` to continue.",
    ) -> None:
        self.then = then  # what the user can do when the server stays out of reach
        self.transport = transport
        # One mailing for everyone, or one per reader's topics (None: nothing for them).
        self.mailing_for = mailing if callable(mailing) else (lambda _s: mailing)
        self.policy = policy
        self.pacer = pacer
        self.tally = tally
        self.record = record
        self.bucket = TokenBucket(policy.rate_limit, pacer) if policy.rate_limit > 0 else None
        self.rng = random.Random()

    def run(self, batch: Sequence[Subscriber]) -> list[tuple[Subscriber, Outcome]]:
        """Send the batch; return each subscriber's final outcome."""
        remaining = list(batch)
        final: list[tuple[Subscriber, Outcome]] = []
        for attempt in itertools.count(1):
            if self.bucket:
                self.bucket.take(len(remaining))
            outcomes = self._deliver(remaining)
            pairs = list(zip(remaining, outcomes, strict=True))
            done = [(s, o) for s, o in pairs if o.status != "retry"]
            later = [(s, o) for s, o in pairs if o.status == "retry"]
            # Record after every attempt: what the server accepted must reach the ledger
            # before anything else can go wrong (that is the whole crash window).
            if done:
                left = {s.id: o.left for s, o in done if o.left}
                self.record([_row(s, o) for s, o in done], left)
                self.tally.add(done, deferred=False)
                final.extend(done)
            # The sender's or account's fault: what was sent is recorded above, the rest
            # stays pending untouched (no failure, so no bounce), and the run stops.
            if halted := next((o for _, o in later if o.halted), None):
                raise DeliveryError(halted.detail or "The provider refused the sender.")
            if not later:
                return final
            if attempt > self.policy.retries or self.pacer.stopped:
                self.record([DeliveryResult(s.id, "pending", error=o.detail) for s, o in later], {})
                self.tally.add(later, deferred=True)
                final.extend(later)
                if attempt > self.policy.retries and all(o.unavailable for _, o in later):
                    raise DeliveryError(
                        f"Giving up after {attempt} attempts: {later[-1][1].detail}. {self.then}"
                    )
                return final
            retry_after = max((o.retry_after or 0.0 for _, o in later), default=0.0)
            self.pacer.sleep(
                backoff_delay(
                    attempt,
                    initial=self.policy.backoff,
                    maximum=self.policy.backoff_max,
                    retry_after=retry_after,
                    rng=self.rng,
                )
            )
            remaining = [s for s, _ in later]
        raise AssertionError("unreachable")  # pragma: no cover (itertools.count never ends)

    def _deliver(self, batch: Sequence[Subscriber]) -> list[Outcome]:
        """One transport call per distinct mailing in the batch, outcomes in batch order."""
        groups: dict[int, tuple[Mailing | None, list[int]]] = {}
        for index, subscriber in enumerate(batch):
            mailing = self.mailing_for(subscriber)
            groups.setdefault(id(mailing), (mailing, []))[1].append(index)
        outcomes: list[Outcome] = [skipped("") for _ in batch]
        for mailing, indexes in groups.values():
            if mailing is None:
                for index in indexes:
                    outcomes[index] = skipped("no stories in their topics today")
                continue
            # A copy that cannot be made is that reader's failure, not the batch's.
            sendable = []
            for index in indexes:
                problem = mailing.refusal(batch[index])
                if problem is None:
                    sendable.append(index)
                else:
                    outcomes[index] = failed(problem)
            indexes = sendable
            if not indexes:
                continue
            sent = self.transport.deliver(mailing, [batch[i] for i in indexes])
            for index, outcome in zip(indexes, sent, strict=True):
                outcomes[index] = outcome
        return outcomes


def _row(subscriber: Subscriber, outcome: Outcome) -> DeliveryResult:
    if outcome.status == "sent":
        return DeliveryResult(subscriber.id, "sent", message_id=outcome.detail)
    if outcome.status == "skipped":
        return DeliveryResult(subscriber.id, "skipped", error=outcome.detail)
    return DeliveryResult(subscriber.id, "failed", error=outcome.detail)


class _PendingRows:
    """A digest's pending deliveries, batch by batch as claimed, one batch read ahead."""

    def __init__(self, claim: Callable[[], list[Subscriber]]) -> None:
        self._read = claim
        self._ahead: list[Subscriber] | None = None
        self.exhausted = False

    def next(self) -> list[Subscriber]:
        """The next batch; empty once there is none left."""
        if self.exhausted:
            return []
        batch = self._ahead if self._ahead is not None else self._read()
        self._ahead = None
        if not batch:
            self.exhausted = True
        return batch

    def close(self) -> None:
        """Take no more batches (a read-ahead one is given back with the claims)."""
        self.exhausted, self._ahead = True, None

    def read_ahead(self) -> None:
        """Read the next batch now, while the workers are busy with the last ones."""
        if not self.exhausted and self._ahead is None:
            self._ahead = self._read()


def _batch_size(policy: DeliveryPolicy, transport: Transport, asked: int | None) -> int:
    size = asked or policy.batch_size
    if transport.multiplexed:
        # One worker drives every connection: a batch is `size` per connection, so each
        # connection still has at most one batch in flight (the crash window) and the
        # connections sit idle at a ledger write once per `size` messages, not more often.
        size *= policy.concurrency
    return min(size, transport.max_batch)


def _recorder(
    engine: Engine, digest_id: int, bounce_threshold: int
) -> Callable[[list[DeliveryResult], dict[int, Left]], None]:
    """What records one attempt's results: the ledger rows and who left or bounced."""

    def record(rows: list[DeliveryResult], left: dict[int, Left]) -> None:
        with store.transaction(engine) as conn:
            store.record_deliveries(conn, digest_id, rows)
            # A reader the provider says unsubscribed or complained takes that status
            # now; only plain refusals count towards `bounced`.
            store.mark_left(conn, dict(left))
            refused = [
                row.subscriber_id
                for row in rows
                if row.status == "failed" and row.subscriber_id not in left
            ]
            store.mark_bounced(conn, refused, bounce_threshold)

    return record


class _Variants:
    """The mailing for each reader: everyone's, or their topics' (None: no stories)."""

    def __init__(
        self,
        everyone: Mailing,
        for_topics: Callable[[tuple[str, ...]], MessageTemplate | None] | None,
    ) -> None:
        self.everyone, self.for_topics = everyone, for_topics
        self.made: dict[tuple[str, ...], Mailing | None] = {}
        self.lock = Lock()

    def __call__(self, subscriber: Subscriber) -> Mailing | None:
        if not subscriber.topics or self.for_topics is None:
            return self.everyone
        with self.lock:  # render each topic set once, whichever worker asks first
            if subscriber.topics not in self.made:
                chosen = self.for_topics(subscriber.topics)
                everyone = self.everyone
                self.made[subscriber.topics] = (
                    Mailing(everyone.key, chosen, everyone.token_for) if chosen else None
                )
            return self.made[subscriber.topics]


def deliver_digest(
    engine: Engine,
    *,
    digest_id: int,
    digest_key: str,
    template: MessageTemplate,
    transport: Transport,
    token_for: Callable[[int], str],
    for_topics: Callable[[tuple[str, ...]], MessageTemplate | None] | None = None,
    policy: DeliveryPolicy | None = None,
    batch_size: int | None = None,
    on_batch: Callable[[DeliveryReport], bool | None] | None = None,
) -> DeliveryReport:
    """Send every pending delivery of the digest; return what happened in this run.

    Batches are claimed on the ledger (see store/claims.py), so other senders, on this
    host or another, work on the same digest at once without sending a row twice; the
    claims are renewed while this run lasts and given back when it ends.

    `for_topics` gives the message for readers who chose topics (None when their topics
    have no stories today); it is asked once per distinct set of topics.
    `on_batch` gets the running totals after each batch (for a progress bar); when it
    answers False, no more batches are taken: those in flight finish and are recorded,
    and the rest is given back for another run or worker;
    `batch_size`, when given, overrides the policy's.
    """
    policy = policy or DeliveryPolicy()
    size = _batch_size(policy, transport, batch_size)
    with store.transaction(engine) as conn:
        skipped = store.skip_inactive_deliveries(conn, digest_id)
    pacer = Pacer(test_mode=policy.test_mode)
    tally = _Tally(skipped, pacer)
    record = _recorder(engine, digest_id, policy.bounce_threshold)
    mailing_for = _Variants(Mailing(digest_key, template, token_for), for_topics)
    sender = _Sender(transport, mailing_for, policy, pacer, tally, record)
    workers = 1 if transport.multiplexed else policy.concurrency
    pool = ThreadPoolExecutor(workers, thread_name_prefix="deliver")
    in_flight: set[Future[list[tuple[Subscriber, Outcome]]]] = set()
    owner = owner_name()
    renewing = _ClaimRenewal(engine, owner, policy.claim_seconds)

    last = 0  # the last subscriber claimed: the next claim starts past it

    def claim() -> list[Subscriber]:
        # Rows this run claimed stay claimed until it ends, so each is taken once per run
        # (a deferred row waits for the next run, as it always has).
        nonlocal last
        with store.transaction(engine) as conn:
            batch = store.claim_deliveries(
                conn, digest_id, owner, size, policy.claim_seconds, after=last
            )
        if not batch and last:
            # Past the end: rows before it may have come free since (a dead sender's claims
            # expired, another sender gave its batches back); one walk from the start.
            last = 0
            return claim()
        last = batch[-1].id if batch else 0
        return batch

    pending = _PendingRows(claim)
    try:
        while True:
            while len(in_flight) < workers and (batch := pending.next()):
                in_flight.add(pool.submit(sender.run, batch))
            if workers > 1:
                # Read ahead while the workers send; a lone worker would only wait for
                # the interpreter lock while this thread holds it.
                pending.read_ahead()
            if not in_flight:
                break
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()  # a worker's fatal error (wrong password ...) ends the run
            if on_batch and on_batch(tally.report()) is False:
                pending.close()
    finally:
        # On any way out, wake sleeping workers and let in-flight batches record.
        if in_flight:
            pacer.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        renewing.stop()
        with store.transaction(engine) as conn:
            store.release_claims(conn, owner)
    return tally.report()


class _ClaimRenewal:
    """Renews a sender's claims in the background while it runs."""

    def __init__(self, engine: Engine, owner: str, ttl: float) -> None:
        self._stop = Event()
        self._thread = Thread(
            target=self._run, args=(engine, owner, ttl), name="deliver-claims", daemon=True
        )
        self._thread.start()

    def _run(self, engine: Engine, owner: str, ttl: float) -> None:
        while not self._stop.wait(ttl / 4):
            try:
                with store.transaction(engine) as conn:
                    store.renew_claims(conn, owner, ttl)
            except Exception as exc:  # a busy database now and then must not end the run
                log.warning("could not renew the delivery claims of %s: %s", owner, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def send_test(
    transport: Transport,
    mailing: Mailing,
    subscriber: Subscriber,
    policy: DeliveryPolicy | None = None,
) -> Outcome:
    """Send one copy to one address, retried like any other but never recorded."""
    policy = policy or DeliveryPolicy()
    # A test send answers while someone waits: one retry, not the full backoff ladder.
    policy = dataclasses.replace(policy, retries=min(policy.retries, 1))
    pacer = Pacer(test_mode=policy.test_mode)
    sender = _Sender(
        transport,
        mailing,
        policy,
        pacer,
        _Tally(0, pacer),
        lambda _r, _l: None,
        then="Nothing was sent; check the delivery settings.",
    )
    [(_, outcome)] = sender.run([subscriber])
    return outcome
