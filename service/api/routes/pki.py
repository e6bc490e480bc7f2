"""The development PKI's public services: CRLs, OCSP, timestamps, CA certificates.

Relying parties (pdfsig, Adobe, other verifiers) fetch these without credentials,
as the protocols expect; they answer only for the development PKI and hold no data
of any unit. With real trust roots (production) they answer 404.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.api.bodies import der_body
from service.api.deps import Signing
from service.api.multipart import read_small_body
from service.errors import NotFoundError

if TYPE_CHECKING:
    from service.signing import DevelopmentPki
    from service.signing.runtime import SigningRuntime

router = APIRouter(prefix="/pki", tags=["pki"])
_MAX_REQUEST = 64 * 1024


def _pki(runtime: SigningRuntime) -> DevelopmentPki:
    if runtime.pki is None:
        raise NotFoundError("this deployment uses an external PKI")
    return runtime.pki


async def _body(request: Request) -> bytes:
    return await read_small_body(request, _MAX_REQUEST, "an OCSP or timestamp request")


@router.get("/ca.crl", summary="CRL of the issuing CA (DER)", response_class=Response)
async def issuing_crl(runtime: Signing) -> Response:
    der = await asyncio.to_thread(_pki(runtime).build_crl)
    return Response(der, media_type="application/pkix-crl")


@router.get("/root.crl", summary="CRL of the root CA (DER)", response_class=Response)
async def root_crl(runtime: Signing) -> Response:
    der = await asyncio.to_thread(_pki(runtime).build_root_crl)
    return Response(der, media_type="application/pkix-crl")


@router.get("/ca.pem", summary="The root and issuing CA certificates (PEM)", response_class=Response)
async def ca_certificates(runtime: Signing) -> Response:
    pki = _pki(runtime)
    pem = b"".join(p.read_bytes() for p in pki.chain_paths)
    return Response(pem, media_type="application/x-pem-file")


@router.post("/ocsp", summary="OCSP responder (RFC 6960)", response_class=Response,
             openapi_extra=der_body("application/ocsp-request", "A DER OCSPRequest"))
async def ocsp(request: Request, runtime: Signing) -> Response:
    der = await asyncio.to_thread(_pki(runtime).answer_ocsp, await _body(request))
    return Response(der, media_type="application/ocsp-response")


@router.post("/tsa", summary="Timestamp authority (RFC 3161)", response_class=Response,
             openapi_extra=der_body("application/timestamp-query", "A DER TimeStampReq"))
async def tsa(request: Request, runtime: Signing) -> Response:
    der = await asyncio.to_thread(_pki(runtime).answer_timestamp, await _body(request))
    return Response(der, media_type="application/timestamp-reply")
