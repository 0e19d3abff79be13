"""Solara mounted inside the user's own Starlette app, as docs/operations.md shows it."""

import contextlib

import solara.server.starlette
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from solara_persisted import solara_integration


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    solara_integration.activate()  # refuses a bad configuration here, before serving
    yield
    solara_integration.deactivate()  # drains every session, then unhooks


async def home(request: object) -> PlainTextResponse:
    return PlainTextResponse("the user's own app")


app = Starlette(
    lifespan=lifespan,
    routes=[Route("/", home), Mount("/solara", app=solara.server.starlette.app)],
)
