"""The technician pages: server-rendered HTML (Jinja2), plain CSS, a little vanilla JS, no build step."""

from ingest.api.pages.web import PAGES_PREFIX, STATIC_DIR

__all__ = ["PAGES_PREFIX", "STATIC_DIR"]
