from __future__ import annotations

from litestar import get

from entrypoints.http.catalog.schemas import ModelItem, ModelList
from entrypoints.http.deps import PrincipalDep, RuntimeDep


@get("/v1/models", tags=["models"], summary="The model catalog with credit prices")
async def list_models(principal: PrincipalDep, runtime: RuntimeDep) -> ModelList:
    return ModelList(items=[ModelItem.of(m) for m in runtime.container.catalog().all()])
