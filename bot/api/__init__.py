"""The HTTP API (/api/v1): one more front end on the same TaskService as Slack."""

from __future__ import annotations

import contextlib
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.api.errors import error_middleware, error_response
from bot.api.openapi import openapi_document
from bot.api.routes import ANSWERING, CONTAINER, ENDPOINTS
from bot.container import Container

PREFIX = "/api/v1"


def _version() -> str:
    try:
        return version("taskbot")
    except PackageNotFoundError:
        return "0"


def answering() -> Middleware:
    """Hold the front door while a call is answered, so background work lets it go
    first: from when its token checks out (`routes._user`) until it is answered. A
    call refused for its token never holds it, or a stranger could hold everything."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        with contextlib.ExitStack() as answering_now:
            request[ANSWERING] = answering_now
            return await handler(request)

    return middleware


def api_app(container: Container) -> web.Application:
    """A sub-application to mount at PREFIX: `app.add_subapp(PREFIX, api_app(container))`."""
    app = web.Application(middlewares=[answering(), error_middleware])
    app[CONTAINER] = container
    document = openapi_document(ENDPOINTS, PREFIX, _version())

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document)

    async def not_found(_request: web.Request) -> web.Response:
        return error_response(404, "not_found", "There is no such API endpoint.")

    app.router.add_get("/openapi.json", openapi)
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def mount_api(application: web.Application, container: Container) -> None:
    application.add_subapp(PREFIX, api_app(container))
