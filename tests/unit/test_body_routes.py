"""Every route that takes a JSON body reads it through the bounded decoder, off the loop."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter, params
from fastapi.routing import APIRoute

from orchestrator.api import routes
from orchestrator.api.bodies import JSONBodyRoute


def json_body_routes() -> list[APIRoute]:
    found = []
    for info in pkgutil.iter_modules(routes.__path__):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        for value in vars(module).values():
            if not isinstance(value, APIRouter):
                continue
            for route in value.routes:
                body = route.body_field if isinstance(route, APIRoute) else None
                if body is not None and not isinstance(body.field_info, params.Form):
                    found.append(route)
    return found


def test_json_bodies_go_through_the_bounded_decoder() -> None:
    found = json_body_routes()
    assert len(found) >= 6  # jobs, chat completions, experiments, feedback, admin, budgets
    plain = [f"{r.methods} {r.path}" for r in found if not isinstance(r, JSONBodyRoute)]
    assert not plain, plain
