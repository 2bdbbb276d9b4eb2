"""The AsyncAPI document of finsync's Kafka interface, rendered server-side: channels, the
operations on them, messages, keys, headers and Avro payloads."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Response

from finsync.console import asyncapi_view, web

router = APIRouter()


@cache
def _view() -> asyncapi_view.View:
    """Generated once per process: it loads every service's wiring and schema."""
    from finsync.runtime.asyncapi import document

    return asyncapi_view.view(document())


@router.get("/asyncapi")
def asyncapi_page(page: web.Viewer) -> Response:
    return page.render("asyncapi.html", doc=_view())
