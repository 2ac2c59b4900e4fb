"""Topics: a subscriber who chose topics receives only those articles; one render per set."""

from __future__ import annotations

import email
import email.policy

from digest import pipeline, store
from digest.pipeline import open_store, run_digest
from digest.subscribers import add_subscriber


def _text(settings, address: str) -> str | None:
    found = list(settings.outbox_path.rglob(f"{address}.eml"))
    if not found:
        return None
    message = email.message_from_bytes(found[0].read_bytes(), policy=email.policy.default)
    return str(message.get_body(("plain",)).get_content())


def test_each_reader_gets_their_topics_and_each_topic_set_renders_once(settings, monkeypatch):
    engine = open_store(settings)
    add_subscriber(engine, "all@example.org")
    add_subscriber(engine, "sci1@example.org", topics="science")
    add_subscriber(engine, "sci2@example.org", topics="science")
    add_subscriber(engine, "local@example.org", topics="local")
    add_subscriber(engine, "sport@example.org", topics="sport")  # no source has this tag

    renders: list[int] = []
    real_render = pipeline.render

    def counting_render(*args, **kwargs):
        renders.append(len(args[1].items))
        return real_render(*args, **kwargs)

    monkeypatch.setattr(pipeline, "render", counting_render)
    report = run_digest(settings)
    assert report.delivery is not None
    assert (report.delivery.sent, report.delivery.skipped) == (4, 1)
    # The whole digest once, then once per distinct topic set that has stories.
    assert sorted(renders) == [4, 6, 10]

    everything, science, local = (
        _text(settings, a) for a in ("all@example.org", "sci1@example.org", "local@example.org")
    )
    assert everything and science and local
    assert "Portvale replaces" in everything and "== Example Science Wire ==" in everything
    assert "Portvale replaces" not in science and "== Example Science Wire ==" in science
    assert "Portvale replaces" in local and "Example Science Wire" not in local
    assert _text(settings, "sport@example.org") is None
    with store.transaction(engine) as conn:
        digest = store.find_digest(conn, report.key)
        assert store.delivery_counts(conn, digest.id) == {"sent": 4, "skipped": 1}
