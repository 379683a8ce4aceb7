from __future__ import annotations

from litestar import get

from genstudio.entrypoints.http.catalog.schemas import ModelItem, ModelList
from genstudio.entrypoints.http.deps import CatalogDep, PrincipalDep


@get("/v1/models", tags=["models"], summary="The model catalog with credit prices")
async def list_models(principal: PrincipalDep, catalog: CatalogDep) -> ModelList:
    return ModelList(items=[ModelItem.of(m) for m in catalog.all()])
