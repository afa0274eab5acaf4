"""Health and version."""

from __future__ import annotations

from fastapi import APIRouter

import torc
from torc.server.fastjson import FastJSONRoute
from torc.server.responses import JSON

router = APIRouter(route_class=FastJSONRoute)


@router.get("/ping", operation_id="ping")
def ping():
    return JSON({"status": "ok"})


@router.get("/version", operation_id="get_version")
def get_version():
    # torc 0.12 answers with the bare version string.
    return JSON(torc.__version__)
