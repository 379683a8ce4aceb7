from __future__ import annotations

from litestar import get

from entrypoints.http.deps import PrincipalDep, RuntimeDep
from entrypoints.http.schemas import ModelItem, ModelList


@get("/v1/models", tags=["models"], summary="The model catalog with credit prices")
async def list_models(principal: PrincipalDep, runtime: RuntimeDep) -> ModelList:
    return ModelList(items=[ModelItem.of(m) for m in runtime.container.catalog().all()])
