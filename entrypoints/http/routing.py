"""One ``OPTIONS`` answer per path, whichever controllers share it.

Litestar gives each route an ``OPTIONS`` handler whose ``Allow`` lists the methods of
the route it was made for. A controller is registered as a router of its own, so its
routes come with their own ``OPTIONS`` handlers; when a second controller adds methods
to a path (``/v1/me``: account and safety; ``/v1/training/photo-sets``: photos and
training), the app's rebuilt route kept one of those, and ``Allow`` named only that
controller's methods (or registration failed: "Handler already registered ... OPTIONS").

``App`` leaves the generated ``OPTIONS`` handlers out of both sides of a registration
(what is already on the path, what the controller brings), so each route the app
builds generates its own, over all the path's methods. Controllers stay per area (one
per use-case family) rather than one per path.
"""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.handlers import HTTPRouteHandler
from litestar.types.internal_types import RouteHandlerMapItem, RouteHandlerType

#: what Litestar names the handler it generates (litestar.routes.http.HTTPRoute)
_GENERATED = "HTTPRoute.create_options_handler.<locals>.options_handler"


def generated_options(handler: object) -> bool:
    """Whether ``handler`` is the ``OPTIONS`` handler Litestar made for one route."""
    return (
        isinstance(handler, HTTPRouteHandler)
        and handler.http_methods == {"OPTIONS"}
        and getattr(handler.fn, "__qualname__", "") == _GENERATED
    )


class App(Litestar):
    """Litestar whose rebuilt routes answer ``OPTIONS`` with every method of the path."""

    @property
    def route_handler_method_map(self) -> dict[str, RouteHandlerMapItem]:
        # read by Router.register as "the handlers already on this path"
        return _without_generated(super().route_handler_method_map)

    @classmethod
    def get_route_handler_map(
        cls, value: RouteHandlerType | Router
    ) -> dict[str, RouteHandlerMapItem]:
        # read by Router.register as "the handlers this registration brings"
        return _without_generated(super().get_route_handler_map(value))


def _without_generated(
    handlers: dict[str, RouteHandlerMapItem],
) -> dict[str, RouteHandlerMapItem]:
    return {
        path: {method: h for method, h in item.items() if not generated_options(h)}
        for path, item in handlers.items()
    }
