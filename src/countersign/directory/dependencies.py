from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from countersign.directory.base import Directory
from countersign.directory.resolver import ApproverResolver


def get_resolver(request: Request) -> ApproverResolver:
    resolver: ApproverResolver = request.app.state.resolver
    return resolver


def get_directory(request: Request) -> Directory:
    resolver: ApproverResolver = request.app.state.resolver
    return resolver.directory


ResolverDep = Annotated[ApproverResolver, Depends(get_resolver)]
DirectoryDep = Annotated[Directory, Depends(get_directory)]
