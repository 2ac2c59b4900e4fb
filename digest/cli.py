"""The `digest` command: each command parses options, makes one call, prints the result."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digest.errors import DigestError
from digest.settings import Settings, load_settings

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
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


@app.callback()
def _main(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Collect articles, summarize them, and mail one good digest a day."""
    ctx.obj = load_settings(config)


@app.command()
def run(ctx: typer.Context) -> None:
    """Run today's digest: collect, compose once, deliver to every active subscriber.

    Example: digest run
    """
    from digest.pipeline import run_digest

    settings = _settings(ctx)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        collecting = progress.add_task("Collecting", total=len(settings.sources))
        sending = progress.add_task("Delivering", total=None, visible=False)
        report = run_digest(
            settings,
            on_source=lambda _r: progress.advance(collecting),
            on_deliveries=lambda n: progress.update(sending, total=n, visible=True),
            on_batch=lambda n: progress.advance(sending, n),
        )
    _print_sources(report.sources)
    table = Table(title=f"Digest {report.key}", show_header=False)
    table.add_row("Articles in digest", str(report.articles))
    table.add_row("New this run", "yes" if report.created else "no (already composed)")
    if report.delivery is not None:
        table.add_row("Messages written now", str(report.delivery.sent))
        table.add_row("Failed now", str(report.delivery.failed))
        totals = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
        table.add_row("Ledger", totals or "no subscribers")
    if report.outbox is not None:
        table.add_row("Outbox", str(report.outbox / report.key.replace("/", "-")))
    console.print(table)
    for note in report.notes:
        console.print(f"• {note}")
    for warning in report.warnings:
        console.print(f"[yellow]Warning:[/] {warning}")
    if report.delivery and report.delivery.errors:
        for error in report.delivery.errors[:10]:
            console.print(f"[red]Failed:[/] {error}")
    console.print("Preview the next digest in your browser: digest preview")


def _print_sources(reports: list[Any]) -> None:
    if not reports:
        return
    table = Table(title="Sources")
    table.add_column("Source")
    table.add_column("New", justify="right")
    table.add_column("Seen", justify="right")
    table.add_column("Status")
    for r in reports:
        status = "[green]ok[/]" if r.error is None else f"[red]{r.error}[/]"
        table.add_row(r.name, str(r.new), str(r.seen), status)
    console.print(table)


@app.command()
def collect(ctx: typer.Context) -> None:
    """Fetch every source and store new articles, without sending anything.

    Example: digest collect
    """
    from digest.collect import collect_sources
    from digest.pipeline import open_store

    settings = _settings(ctx)
    _print_sources(collect_sources(settings, open_store(settings)))


@app.command()
def summarize(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Article URL, text or HTML file, or - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    all_quotes: Annotated[
        bool, typer.Option("--all-quotes", help="Every quote in order, before ranking.")
    ] = False,
) -> None:
    """Clean one article (file, URL or stdin) and print its lead and key quotes.

    Example: digest summarize config/samples/articles/01-harbor-ferry.txt --json
    """
    from digest.collect.pages import read_article
    from digest.models import Article
    from digest.summarize import all_quotes as every_quote
    from digest.summarize import summarize as summarize_article

    settings = _settings(ctx)
    clean = read_article(path)
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
    result = {
        "title": clean.title,
        "subtitle": clean.subtitle,
        "byline": clean.byline,
        "lead": summary.lead,
        "quotes": [asdict(q) for q in quotes],
        "paragraphs": list(clean.paragraphs),
    }
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        return
    console.print(f"[bold]{clean.title}[/]")
    if clean.byline:
        console.print(f"By {clean.byline}")
    console.print(f"\n{summary.lead}\n")
    for quote in quotes:
        console.print(f"  “{quote.text}” — {quote.speaker or 'unattributed'}")


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

    import uvicorn

    from digest.web import create_app

    url = f"http://{host}:{port}/"
    console.print(f"Preview at {url} (Ctrl+C to stop)")
    if not no_open:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(_settings(ctx)), host=host, port=port, log_level="warning")


@subscribers_app.command("add")
def subscribers_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="Email address.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    topics: Annotated[str | None, typer.Option(help="Comma-separated topics.")] = None,
    status: Annotated[str, typer.Option(help="active or pending.")] = "active",
) -> None:
    """Add a subscriber (or update one).

    Example: digest subscribers add ana@example.org --name "Ana Lindgren"
    """
    from digest.pipeline import open_store
    from digest.subscribers import add_subscriber

    subscriber, created = add_subscriber(
        open_store(_settings(ctx)), email, name=name, topics=topics, status=status
    )
    verb = "Added" if created else "Updated"
    console.print(f"{verb} {subscriber.email} ({subscriber.status}).")


@subscribers_app.command("remove")
def subscribers_remove(
    ctx: typer.Context, email: Annotated[str, typer.Argument(help="Email address.")]
) -> None:
    """Unsubscribe someone; they receive nothing that is not yet delivered.

    Example: digest subscribers remove ana@example.org
    """
    from digest.pipeline import open_store
    from digest.subscribers import remove_subscriber

    subscriber = remove_subscriber(open_store(_settings(ctx)), email)
    console.print(f"{subscriber.email} is now unsubscribed.")


@subscribers_app.command("list")
def subscribers_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """List subscribers.

    Example: digest subscribers list --status active --format csv
    """
    from digest import store
    from digest.pipeline import open_store
    from digest.subscribers import export_csv

    with store.transaction(open_store(_settings(ctx))) as conn:
        people = store.list_subscribers(conn, status)
    if fmt == "csv":
        sys.stdout.write(export_csv(people))
    elif fmt == "json":
        sys.stdout.write(json.dumps([asdict(p) for p in people], ensure_ascii=False) + "\n")
    elif fmt == "table":
        table = Table(title=f"{len(people)} subscribers")
        for column in ("Email", "Name", "Topics", "Status"):
            table.add_column(column)
        for p in people:
            table.add_row(p.email, p.name or "", ", ".join(p.topics), p.status)
        console.print(table)
    else:
        raise DigestError(f"Unknown format {fmt!r}; use table, csv or json.")


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
    from digest.pipeline import open_store
    from digest.subscribers import import_csv

    report = import_csv(
        open_store(_settings(ctx)), file, strict=strict, dry_run=dry_run, resubscribe=resubscribe
    )
    for line, reason in report.errors:
        err_console.print(f"[red]line {line}:[/] {reason}")
    if strict and report.errors:
        raise DigestError(f"{len(report.errors)} bad rows; nothing imported (--strict).")
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
        err_console.print(f"[red]Error:[/] {exc}", highlight=False, soft_wrap=True)
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
