"""What a person reads about the registry: model cards and the browsable static pages."""

from batchml.registry.pages.card import model_card
from batchml.registry.pages.document import to_html, to_markdown
from batchml.registry.pages.site import SiteReport, write_site

__all__ = ["SiteReport", "model_card", "to_html", "to_markdown", "write_site"]
