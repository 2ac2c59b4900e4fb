"""digest: one good newsletter email a day, from feeds, pages and scraped text."""

__version__ = "0.1.0"
