"""The `digest` command: each command parses options, makes one call, prints the result."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from digest.errors import ConfigError, DigestError, InvalidInput, SourceError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from digest.deliver import DeliveryReport
    from digest.pipeline import RunReport
    from digest.settings import Settings

app = typer.Typer(
    name="digest",
    help="Collect articles, summarize them, and mail one good digest a day.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
subscribers_app = typer.Typer(help="Manage who receives the digest.", no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $DIGEST_CONFIG or config/digest.toml)."
    ),
]


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj  # set by _main, which runs before every command
    return settings


def _engine(ctx: typer.Context) -> Engine:
    """The store, without importing the pipeline (collection, rendering) it does not need."""
    from digest import store

    return store.connect(_settings(ctx).db_url)


@app.callback()
def _main(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Collect articles, summarize them, and mail one good digest a day."""
    # Imported here so `digest --help` never pays for pydantic.
    from digest.settings import config_path, load_settings

    ctx.obj = load_settings(config)
    ctx.meta["config_path"] = config_path(config)


@app.command()
def run(ctx: typer.Context) -> None:
    """Run today's digest: collect, compose once, deliver to every active subscriber.

    Example: digest run
    """
    from digest.pipeline import run_digest

    settings = _settings(ctx)
    with _delivery_progress() as progress:
        collecting = progress.add_task("Collecting", total=len(settings.sources))
        report = run_digest(
            settings,
            on_source=lambda _r: progress.advance(collecting),
            on_deliveries=progress.show_delivery,
            on_batch=progress.update_delivery,
        )
    _print_sources(report.sources)
    _print_delivery(report, created=report.created)
    console.print("Preview the next digest in your browser: digest preview")


@app.command()
def send(
    ctx: typer.Context,
    digest: Annotated[
        str | None,
        typer.Option("--digest", help="Digest key, e.g. daily/2026-11-28 (default: the latest)."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Send one test copy to this address instead; records nothing."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=64, help="Processes that send at once (PostgreSQL)."),
    ] = 1,
) -> None:
    """Send a composed digest's pending messages, or one test copy with --to.

    Without --to, delivers what is still pending (after a crash, or deferred failures).
    With --workers N, N-1 `digest worker --once` processes share the pending rows with
    this one (each claims its own batches); on SQLite one process sends at a time.
    With --to, sends one copy of the digest (or of the draft the preview shows) to that
    address only; it is not a delivery and changes nothing.

    Example: digest send --workers 4
    """
    from digest.pipeline import send_digest, send_test_copy

    settings = _settings(ctx)
    if to is not None:
        console.print(send_test_copy(settings, to, digest))
        return
    helpers = _start_workers(ctx, settings, workers - 1)
    try:
        with _delivery_progress() as progress:
            report = send_digest(
                settings,
                key=digest,
                on_deliveries=progress.show_delivery,
                on_batch=progress.update_delivery,
            )
    finally:
        sent_by_helpers = _wait_for_workers(helpers)
    _print_delivery(report)
    if helpers:
        console.print(f"The other {len(helpers)} workers sent {sent_by_helpers} messages.")


def _start_workers(
    ctx: typer.Context, settings: Settings, count: int
) -> list[subprocess.Popen[str]]:
    """`digest worker --once` processes beside this one; none on SQLite (one writer)."""
    if count <= 0:
        return []
    if settings.db_url.startswith("sqlite"):
        err_console.print("On SQLite one process sends at a time: --workers is ignored.")
        return []
    config = ctx.find_root().meta.get("config_path")
    command = [sys.executable, "-m", "digest.cli"]
    if config:
        command += ["--config", str(config)]
    return [
        subprocess.Popen(  # noqa: S603 (our own entry point, our own arguments)
            [*command, "worker", "--once"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]


def _wait_for_workers(helpers: list[subprocess.Popen[str]]) -> int:
    """Wait for the helper workers; how many messages they sent, from their last line."""
    sent = 0
    for helper in helpers:
        output, _ = helper.communicate()
        found = re.search(r"Worker stopped: (\d+) sent", output or "")
        sent += int(found.group(1)) if found else 0
    return sent


class _DeliveryColumn(ProgressColumn):
    """Sent and failed so far, and messages a second (blank on other bars)."""

    def render(self, task: Task) -> Text:
        if "sent" not in task.fields:
            return Text("")
        speed = task.finished_speed or task.speed
        rate = f", {speed:,.0f}/s" if speed else ""
        sent, failed = task.fields["sent"], task.fields["failed"]
        return Text(f"{sent} sent, {failed} failed{rate}", style="progress.data.speed")


class _DeliveryProgress(Progress):
    """A progress display whose "Delivering" bar shows sent, failed, rate and ETA."""

    def show_delivery(self, pending: int) -> None:
        self._sending = self.add_task("Delivering", total=pending, sent=0, failed=0)

    def update_delivery(self, report: DeliveryReport) -> None:
        done = report.sent + report.failed + report.deferred
        self.update(self._sending, completed=done, sent=report.sent, failed=report.failed)


def _delivery_progress() -> _DeliveryProgress:
    return _DeliveryProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _DeliveryColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_delivery(report: RunReport, created: bool | None = None) -> None:
    table = Table(title=f"Digest {report.key}", show_header=False)
    table.add_row("Articles in digest", str(report.articles))
    if created is not None:
        table.add_row("New this run", "yes" if created else "no (already composed)")
    delivery = report.delivery
    if delivery is not None:
        verb = "written" if report.outbox is not None else "sent"
        table.add_row(f"Messages {verb} now", str(delivery.sent))
        table.add_row("Failed now", str(delivery.failed))
        if delivery.deferred:
            table.add_row("Deferred (still pending)", str(delivery.deferred))
        if delivery.sent:
            table.add_row("Rate", f"{delivery.rate:,.0f} messages/s")
        totals = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
        table.add_row("Ledger", totals or "no subscribers")
    if report.outbox is not None:
        table.add_row("Outbox", str(report.outbox / report.key.replace("/", "-")))
    console.print(table)
    for note in report.notes:
        console.print(f"• {note}")
    for warning in report.warnings:
        console.print(f"[yellow]Warning:[/] {warning}")
    if delivery is not None:
        for error in delivery.errors[:10]:
            console.print(f"[red]Not delivered:[/] {error}")
        if delivery.deferred:
            console.print("Deferred messages stay pending: run `digest send` to retry them.")


_STATUS_STYLE = {"ok": "green", "not modified": "green", "partial": "yellow", "error": "red"}


def _status(status: str | None) -> Text:
    return Text(status or "never collected", style=_STATUS_STYLE.get(status or "", "dim"))


def _print_sources(reports: list[Any]) -> None:
    if not reports:
        return
    table = Table(title="Sources")
    table.add_column("Source")
    table.add_column("Status")
    table.add_column("New", justify="right")
    table.add_column("Seen", justify="right")
    table.add_column("Problem")
    for r in reports:
        table.add_row(r.name, _status(r.status), str(r.new), str(r.seen), Text(r.error or ""))
    console.print(table)
    failed = sum(1 for r in reports if r.status == "error")
    if failed:
        console.print(f"{failed} of {len(reports)} sources failed; the others were collected.")


@app.command()
def collect(ctx: typer.Context) -> None:
    """Fetch every source at once and store new articles, without sending anything.

    Shows a progress bar while fetching, then a table of sources: status, new and already
    seen articles, and one sentence for any source that failed.

    Example: digest collect
    """
    from digest.collect import collect_sources

    settings = _settings(ctx)
    engine = _engine(ctx)
    with Progress(
        TextColumn("[bold]Collecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(settings.sources))
        reports = collect_sources(
            settings,
            engine,
            on_source=lambda r: progress.update(task, advance=1, description=r.name),
        )
    _print_sources(reports)


@app.command()
def sources(ctx: typer.Context) -> None:
    """List the configured sources and their health from the last collection.

    Example: digest sources
    """
    from digest.collect import source_health

    settings = _settings(ctx)
    rows = source_health(settings, _engine(ctx))
    if not rows:
        console.print("No sources configured; add [[sources]] to the config file.")
        return
    table = Table(title=f"{len(rows)} sources")
    for column in ("Source", "Kind", "Location", "Status", "Last checked", "Articles"):
        table.add_column(column, justify="right" if column == "Articles" else "left")
    table.add_column("Failures in a row", justify="right")
    table.add_column("Last error")
    for h in rows:
        checked = f"{h.last_checked_at:%Y-%m-%d %H:%M} UTC" if h.last_checked_at else ""
        table.add_row(
            h.name,
            h.kind,
            Text(h.location),
            _status(h.status),
            checked,
            str(h.articles),
            str(h.consecutive_failures),
            Text(h.last_error or ""),
        )
    console.print(table)


@app.command()
def summarize(
    ctx: typer.Context,
    paths: Annotated[
        list[str], typer.Argument(help="Article URLs, text or HTML files, or - for stdin.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: one object, or one line per article.")
    ] = False,
    all_quotes: Annotated[
        bool, typer.Option("--all-quotes", help="Every quote in order, before ranking.")
    ] = False,
) -> None:
    """Clean articles (files, URLs or stdin) and print each one's lead and key quotes.

    With several paths and --json, prints JSON Lines: one object per path, in order, each
    with its "path". A path that cannot be read is reported (a line on stderr, and
    {"path": ..., "error": ...} in JSON Lines) and the rest go on; the exit code is 1 then.

    Example: digest summarize config/samples/articles/01-harbor-ferry.txt --json
    """
    from digest.collect.article import read_article
    from digest.models import Article
    from digest.summarize import all_quotes as every_quote
    from digest.summarize import summarize as summarize_article

    settings = _settings(ctx)
    lines = as_json and len(paths) > 1
    failed = 0
    for path in paths:
        try:
            clean = read_article(path, settings.collect)
        except DigestError as exc:
            if len(paths) == 1:
                raise
            # One unreadable file in a folder's worth must not hide the others' results.
            failed += 1
            reason = _naming(path, str(exc))
            err_console.print(f"[red]Error:[/] {escape(reason)}", highlight=False, soft_wrap=True)
            if lines:
                record = {"path": path, "error": reason}
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            continue
        article = Article(
            title=clean.title,
            subtitle=clean.subtitle,
            byline=clean.byline,
            paragraphs=clean.paragraphs,
            source=path,
        )
        summary = summarize_article(
            article, lead_words=settings.summary.lead_words, quotes=settings.summary.quotes
        )
        quotes = every_quote(article) if all_quotes else list(summary.quotes)
        result: dict[str, object] = {"path": path} if lines else {}
        result |= {
            "title": clean.title,
            "subtitle": clean.subtitle,
            "byline": clean.byline,
            "lead": summary.lead,
            "quotes": [asdict(q) for q in quotes],
            "paragraphs": list(clean.paragraphs),
        }
        if as_json:
            # One article keeps the readable indented object; several are one line each.
            indent = 2 if len(paths) == 1 else None
            sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=indent) + "\n")
            continue
        console.print(f"[bold]{clean.title}[/]")
        if clean.byline:
            console.print(f"By {clean.byline}")
        console.print(f"\n{summary.lead}\n")
        for quote in quotes:
            console.print(f"  “{quote.text}” — {quote.speaker or 'unattributed'}")
    if failed:
        raise SourceError(f"{failed} of {len(paths)} articles could not be read (listed above).")


def _naming(path: str, reason: str) -> str:
    """An error about one of several paths, saying which path it is about."""
    return reason if path in reason else f"{path}: {reason}"


@app.command()
def preview(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser.")] = False,
) -> None:
    """Show the next digest in the browser, exactly as it would be sent; sends nothing.

    Example: digest preview --port 8000
    """
    import threading
    import webbrowser

    url = f"http://{host}:{port}/preview"
    console.print(f"Preview at {url} (Ctrl+C to stop). It reloads when templates change.")
    if not no_open:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    _serve(ctx, host, port, preview=True)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the web app: archive, sign-up and unsubscribe pages, and the operator preview.

    Put it behind your web server at web.base_url; the operator pages need
    web.admin_password (set DIGEST_WEB__ADMIN_PASSWORD).

    Example: digest serve --host 127.0.0.1 --port 8000
    """
    console.print(f"Serving on http://{host}:{port}/ (Ctrl+C to stop)")
    _serve(ctx, host, port)


def _serve(ctx: typer.Context, host: str, port: int, *, preview: bool = False) -> None:
    import uvicorn

    from digest.web import create_app, is_loopback

    settings = _settings(ctx)
    # Only `digest preview` on a loopback address opens the operator pages without the
    # admin password; `digest serve` may sit behind a proxy, where every visitor would
    # look local.
    local = preview and (host == "localhost" or is_loopback(host))
    app_ = create_app(settings, ctx.find_root().meta.get("config_path"), local_operator=local)
    proxies = settings.web.trusted_proxies
    uvicorn.run(
        app_,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) or None,
    )


@app.command()
def schedule(
    ctx: typer.Context,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run what is due now, then exit (for cron or a timer)."),
    ] = False,
) -> None:
    """Send the digest on its schedule (schedule.cron) until stopped; logs one line per job.

    SIGTERM or Ctrl+C stops it after the current batch. A digest is never sent twice.

    Example: digest schedule --once
    """
    from digest.joblog import configure_logging
    from digest.schedule import run_schedule

    configure_logging()
    run_schedule(_settings(ctx), once=once)


def _print_outcomes(settings: Settings) -> None:
    """The last issues of the daily list: sent, failed, who left within a week, clicks."""
    from digest import store
    from digest.outcomes import LEFT, issue_outcomes

    outcomes = issue_outcomes(store.connect(settings.db_url), settings.digest.list_name)
    if not outcomes:
        return
    # Click columns only where there are clicks to show: an 80-column terminal has no
    # room for two columns of zeros.
    clicks = settings.tracking.clicks or any(item.clicks for item in outcomes)
    table = Table(title=f"How the last issues did ({settings.digest.list_name})")
    columns = ["Issue", "Sent", "Failed", "Pending", *(s.title() for s in LEFT)]
    columns += ["Clicks", "Most clicked"] if clicks else []
    key_width = max(len(item.key) for item in outcomes)
    for column in columns:
        if column == "Issue":  # the key whole: it is what `digest send --digest` takes
            table.add_column(column, no_wrap=True, min_width=key_width)
            continue
        table.add_column(column, justify="left" if column == "Most clicked" else "right")
    for item in outcomes:
        counts = [item.deliveries.get(s, 0) for s in ("sent", "failed", "pending")]
        row = [item.key, *(str(n) for n in [*counts, *(item.left.get(s, 0) for s in LEFT)])]
        if clicks:
            top = item.stories[0] if item.stories else None
            row += [str(item.clicks), f"{top.title} ({top.clicks})" if top else "-"]
        table.add_row(*row)
    console.print(table)
    console.print("Bounced, complained and unsubscribed: readers of the issue, within 7 days.")
    if not settings.tracking.clicks:
        console.print("Click tracking is off (tracking.clicks); new issues record no clicks.")


@app.command()
def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Send what is pending now, then exit.")
    ] = False,
    poll: Annotated[
        float, typer.Option("--poll", help="Seconds between looks for pending messages.")
    ] = 5.0,
) -> None:
    """Deliver the pending messages of every composed digest, beside other workers.

    Start one on each host (or several on one) against a shared PostgreSQL database:
    workers claim batches of pending rows, so none is sent twice, and the rows of a
    worker that died go to the others a minute later. Composing stays with `digest run`
    or `digest schedule`. On SQLite one process delivers at a time. SIGTERM or Ctrl+C
    stops it after the batches in flight.

    Example: digest worker
    """
    import signal
    import threading

    from digest.worker import run_worker

    settings = _settings(ctx)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    report = run_worker(settings, once=once, poll=poll, stop=stop)
    console.print(
        f"Worker stopped: {report.sent} sent, {report.failed} failed in {report.digests} digests."
    )


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the next scheduled runs, the last digest and its deliveries, and source health.

    Example: digest status
    """
    from zoneinfo import ZoneInfo

    from digest.status import schedule_status

    report = schedule_status(_settings(ctx))
    zone = ZoneInfo(report.zone)
    jobs = Table(title=f"Schedule ({report.zone})")
    for column in ("Job", "When", "Next run", "State"):
        jobs.add_column(column)
    for job in report.jobs:
        when = f"{job.next_run.astimezone(zone):%Y-%m-%d %H:%M %Z}" if job.next_run else "never"
        state = {"not started": "not started: run `digest schedule`"}.get(job.state, job.state)
        jobs.add_row(job.id, job.when, when, state)
    console.print(jobs)
    digests = Table(title="Last digest")
    for column in ("List", "Key", "Composed", "Deliveries"):
        digests.add_column(column)
    for item in report.lists:
        composed = f"{item.composed_at:%Y-%m-%d %H:%M} UTC" if item.composed_at else ""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(item.deliveries.items()))
        digests.add_row(item.list_name, item.last_key or "none yet", composed, counts or "-")
    console.print(digests)
    _print_outcomes(_settings(ctx))
    sources = Table(title="Sources")
    for column in ("Source", "Status", "Last checked", "Failures in a row", "Last error"):
        sources.add_column(column)
    for row in report.sources:
        checked = row["last_checked_at"]
        sources.add_row(
            row["name"],
            row["last_status"] or "never collected",
            f"{checked:%Y-%m-%d %H:%M} UTC" if checked else "",
            str(row["consecutive_failures"]),
            row["last_error"] or "",
        )
    console.print(sources if report.sources else "Sources: none collected yet.")
    console.print(f"Running now: {report.running}" if report.running else "Running now: nothing")
    senders = Table(title="Sending now")
    for column in ("Sender", "Digest", "Rows claimed", "Sent, last minute"):
        senders.add_column(column)
    for sender in report.senders:
        rate = f"{sender['sent']} ({sender['sent'] / 60:.1f}/s)"
        senders.add_row(sender["owner"], sender["key"], str(sender["claimed"]), rate)
    console.print(senders if report.senders else "Sending now: nobody")


@app.command()
def bounces(ctx: typer.Context) -> None:
    """Read the bounce mailbox ([bounces]) and record each bounce on its subscriber.

    Hard bounces (no such user) mark the subscriber bounced at once; soft ones (mailbox
    full) count toward bounces.soft_threshold. Recorded reports move to
    bounces.processed_folder; anything else stays in the folder and is listed. The
    mailbox password comes from DIGEST_BOUNCES__PASSWORD.

    Example: digest bounces
    """
    from digest.bounces import process_bounces

    with Progress(
        TextColumn("[bold]Reading bounces"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=None)
        report = process_bounces(
            _settings(ctx),
            _engine(ctx),
            on_start=lambda total: progress.update(task, total=total),
            on_message=lambda r: progress.update(task, completed=r.read),
        )
    table = Table(title="Bounces", show_header=False)
    table.add_row("Messages read", str(report.read))
    table.add_row("Hard bounces recorded", str(report.hard))
    table.add_row("Soft bounces recorded", str(report.soft))
    table.add_row("Subscribers marked bounced", str(report.marked_bounced))
    table.add_row("Already recorded before", str(report.already_recorded))
    table.add_row("Unsubscribed by email", str(report.unsubscribed))
    table.add_row("Moved to the processed folder", str(report.moved))
    table.add_row("Left in the folder", str(len(report.left)))
    console.print(table)
    if report.left:
        left = Table(title="Left in the bounce folder")
        for column in ("From", "Subject", "Why"):
            left.add_column(column)
        for message in report.left:
            left.add_row(Text(message.sender), Text(message.subject), message.reason)
        console.print(left)


@subscribers_app.command("add")
def subscribers_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="Email address.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    topics: Annotated[str | None, typer.Option(help="Comma-separated topics.")] = None,
    status: Annotated[str, typer.Option(help="active or pending.")] = "active",
    lists: Annotated[
        str | None,
        typer.Option(help="Which digests they get: daily, weekly, or daily,weekly (default)."),
    ] = None,
) -> None:
    """Add a subscriber (or update one).

    Example: digest subscribers add ana@example.org --name "Ana Lindgren" --lists weekly
    """
    from digest.subscribers import add_subscriber

    subscriber, created = add_subscriber(
        _engine(ctx), email, name=name, topics=topics, status=status, lists=lists
    )
    verb = "Added" if created else "Updated"
    console.print(
        f"{verb} {subscriber.email} ({subscriber.status}; lists: {', '.join(subscriber.lists)})."
    )


@subscribers_app.command("remove")
def subscribers_remove(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="Email address.")],
    purge: Annotated[
        bool, typer.Option("--purge", help="Also erase their address, name and topics.")
    ] = False,
) -> None:
    """Unsubscribe someone; they receive nothing that is not yet delivered.

    Example: digest subscribers remove ana@example.org --purge
    """
    from digest.subscribers import purge_subscriber, remove_subscriber

    engine = _engine(ctx)
    if purge:
        subscriber_id = purge_subscriber(engine, email)
        console.print(f"Unsubscribed and erased subscriber #{subscriber_id}'s personal data.")
        return
    subscriber = remove_subscriber(engine, email)
    console.print(f"{subscriber.email} is now unsubscribed.")


@subscribers_app.command("list")
def subscribers_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only people who chose this topic.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """List subscribers.

    Example: digest subscribers list --status active --format csv
    """
    from digest.subscribers import each_subscriber, export_csv

    if fmt not in ("table", "csv", "json"):
        raise InvalidInput(f"Unknown format {fmt!r}; use table, csv or json.")
    people = each_subscriber(_engine(ctx), status, topic)
    if fmt == "csv":
        export_csv(people, sys.stdout)
    elif fmt == "json":
        # A pause's end is written as ISO 8601, like every other time digest prints.
        rows_out = [asdict(p) | {"paused_until": _iso(p.paused_until)} for p in people]
        sys.stdout.write(json.dumps(rows_out, ensure_ascii=False) + "\n")
    else:
        rows = list(people)
        table = Table(title=f"{len(rows)} subscribers")
        for column in ("Email", "Name", "Topics", "Lists", "Status"):
            table.add_column(column)
        for p in rows:
            table.add_row(p.email, p.name or "", ", ".join(p.topics), ", ".join(p.lists), p.status)
        console.print(table)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@subscribers_app.command("show")
def subscribers_show(
    ctx: typer.Context, email: Annotated[str, typer.Argument(help="Email address.")]
) -> None:
    """Show one subscriber: status, topics and what they have been sent.

    Example: digest subscribers show ana@example.org
    """
    from digest.subscribers import subscriber_details

    subscriber, counts = subscriber_details(_engine(ctx), email)
    table = Table(show_header=False, title=subscriber.email)
    table.add_row("Name", subscriber.name or "")
    table.add_row("Status", subscriber.status)
    table.add_row("Topics", ", ".join(subscriber.topics) or "all")
    table.add_row("Lists", ", ".join(subscriber.lists))
    if subscriber.paused_until is not None and subscriber.paused_until > datetime.now(UTC):
        table.add_row("Paused until", f"{subscriber.paused_until:%Y-%m-%d %H:%M} UTC")
    table.add_row("Deliveries", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    console.print(table)


@subscribers_app.command("export")
def subscribers_export(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help="CSV file to write (default: stdout).")
    ] = None,
) -> None:
    """Export every subscriber as CSV, in the format `import` reads.

    Example: digest subscribers export subscribers.csv
    """
    from digest.subscribers import each_subscriber, export_csv

    people = each_subscriber(_engine(ctx))
    if file is None:
        export_csv(people, sys.stdout)
        return
    try:
        with file.open("w", newline="", encoding="utf-8") as handle:
            count = export_csv(people, handle)
    except OSError as exc:
        raise ConfigError(f"Cannot write {file}: {exc.strerror}.") from None
    err_console.print(f"Wrote {count} subscribers to {file}.")


@subscribers_app.command("stats")
def subscribers_stats(ctx: typer.Context) -> None:
    """Count subscribers by status, and active ones by topic.

    Example: digest subscribers stats
    """
    from digest.subscribers import subscriber_stats

    stats = subscriber_stats(_engine(ctx))
    table = Table(title=f"{stats.total} subscribers")
    table.add_column("Status")
    table.add_column("Count", justify="right")
    for status, count in stats.by_status.items():
        table.add_row(status, str(count))
    console.print(table)
    topics = Table(title="Active subscribers by topic")
    topics.add_column("Topic")
    topics.add_column("Count", justify="right")
    for topic, count in stats.by_topic.items():
        topics.add_row(topic, str(count))
    console.print(topics)


@subscribers_app.command("import")
def subscribers_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with a header row: email,name,topics,status.")],
    strict: Annotated[bool, typer.Option(help="Import nothing if any row is bad.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only; change nothing.")] = False,
    resubscribe: Annotated[
        bool, typer.Option(help="Also reactivate people who unsubscribed.")
    ] = False,
) -> None:
    """Import subscribers from CSV; bad rows are listed, good rows imported.

    Example: digest subscribers import config/samples/subscribers.csv
    """
    from digest.subscribers import import_csv

    report = import_csv(_engine(ctx), file, strict=strict, dry_run=dry_run, resubscribe=resubscribe)
    for line, reason in report.errors:
        err_console.print(f"[red]line {line}:[/] {reason}")
    if strict and report.errors:
        raise InvalidInput(f"{len(report.errors)} bad rows; nothing imported (--strict).")
    prefix = "Would import" if dry_run else "Imported"
    console.print(
        f"{prefix}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept_unsubscribed} kept unsubscribed, {len(report.errors)} bad rows."
    )


def main() -> None:
    """Entry point: a user-caused error prints one sentence, never a traceback."""
    try:
        app(standalone_mode=False)
    except DigestError as exc:
        # Escaped: a message naming "[bounces]" or a path with brackets is text, not markup.
        err_console.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted; run the same command again to continue.")
        raise SystemExit(130) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except Exception as exc:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, click.exceptions.Exit):
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
