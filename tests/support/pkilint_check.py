"""Lint DER certificates, CRLs and OCSP responses with pkilint's Python API.

The validators are the ones the ``lint_pkix_cert lint``, ``lint_crl lint -p PKIX`` and
``lint_ocsp_response lint`` commands of pkilint 0.13 build, with one change: the name-attribute
decoder also knows x500UniqueIdentifier (2.5.4.45), whose syntax is ``UniqueIdentifier ::= BIT STRING``
(X.520). Stock pkilint decodes attribute types it does not know as DirectoryString and so reports a
FATAL ``itu.invalid_asn1_syntax`` on every SMKI organisation certificate (DEPENDENCIES.md, gotcha 12).
No finding is filtered or skipped.

Each function returns one line per finding at or above ``min_severity``, formatted as
``"<SEVERITY> <code> @ <node path> [<validator>]: <message>"`` (": <message>" only when pkilint gives
one). An empty list means the document is clean at that threshold, like a CLI exit status of 0.
A document that cannot be decoded at all raises ``ValueError`` (the CLI prints "Failed to load ..."
and exits 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pkilint import loader, pkix, validation  # type: ignore[import-untyped]
from pkilint.pkix import certificate, crl, extension, name, ocsp  # type: ignore[import-untyped]
from pyasn1.type import univ
from pyasn1_alt_modules import rfc5280

__all__ = [
    "ATTRIBUTE_TYPE_MAPPINGS",
    "ID_AT_X500_UNIQUE_IDENTIFIER",
    "SEVERITIES",
    "lint_certificate",
    "lint_crl",
    "lint_ocsp_response",
]

ID_AT_X500_UNIQUE_IDENTIFIER = univ.ObjectIdentifier("2.5.4.45")
"""x500UniqueIdentifier (X.520): ``WITH SYNTAX UniqueIdentifier``, ``UniqueIdentifier ::= BIT STRING``."""

ATTRIBUTE_TYPE_MAPPINGS: Mapping[Any, Any] = {
    **name.ATTRIBUTE_TYPE_MAPPINGS,
    ID_AT_X500_UNIQUE_IDENTIFIER: rfc5280.UniqueIdentifier(),
}
"""pkilint's PKIX name-attribute mappings plus 2.5.4.45 -> BIT STRING."""

SEVERITIES: tuple[str, ...] = tuple(s.name for s in validation.ValidationFindingSeverity)
"""Valid ``min_severity`` values, most severe first: FATAL, ERROR, WARNING, NOTICE, INFO, DEBUG."""

_CRL_TYPES = ("CRL", "ARL")


def _threshold(min_severity: str) -> Any:
    """Map a severity name to pkilint's enum (an IntEnum where FATAL=0 and *lower* means more severe)."""
    key = min_severity.upper()
    if key not in SEVERITIES:
        raise ValueError(f"unknown severity {min_severity!r}; expected one of {', '.join(SEVERITIES)}")
    return validation.ValidationFindingSeverity[key]


def _format(results: Iterable[Any], threshold: Any) -> list[str]:
    """Render findings the way pkilint's report generators select them: ``severity <= threshold``."""
    lines: list[str] = []
    for result in results:
        for description in result.finding_descriptions:
            finding = description.finding
            if finding.severity > threshold:
                continue
            line = f"{finding.severity.name} {finding.code} @ {result.node.path} [{result.validator}]"
            if description.message:
                line += f": {description.message}"
            lines.append(line)
    return lines


def _load(document_loader: Any, der: bytes, what: str) -> Any:
    try:
        return document_loader.load_der_document(der, what, "<bytes>")
    except ValueError as exc:
        raise ValueError(f"pkilint could not load the {what}: {exc}") from exc


def _certificate_validator() -> Any:
    """What ``lint_pkix_cert`` builds, with :data:`ATTRIBUTE_TYPE_MAPPINGS` for names."""
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def _crl_validator() -> Any:
    """What ``lint_crl -p PKIX`` builds (for either ``-t``), with :data:`ATTRIBUTE_TYPE_MAPPINGS`."""
    return crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )


def _ocsp_response_validator() -> Any:
    """What ``lint_ocsp_response`` builds, with :data:`ATTRIBUTE_TYPE_MAPPINGS`."""
    return ocsp.create_pkix_ocsp_response_validator_container(
        [
            ocsp.create_response_decoder(),
            pkix.create_attribute_decoder(ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [],
    )


def lint_certificate(der: bytes, min_severity: str = "WARNING") -> list[str]:
    """Return one human-readable line per finding at or above min_severity.

    Equivalent to ``lint_pkix_cert lint -s <min_severity>`` (e.g.
    ``'WARNING pkix.xyz @ certificate.tbsCertificate... [SomeValidator]: message'``).
    """
    threshold = _threshold(min_severity)
    doc = _load(loader.RFC5280CertificateDocumentLoader(), der, "certificate")
    return _format(_certificate_validator().validate(doc.root), threshold)


def lint_crl(der: bytes, crl_type: str = "CRL", min_severity: str = "WARNING") -> list[str]:
    """Like :func:`lint_certificate` for ``lint_crl lint -t <crl_type> -p PKIX -s <min_severity>``.

    pkilint only uses the CRL type for the CA/B Forum ("BR") profile: with PKIX, "CRL" and "ARL" run
    the same validators. The argument is checked and kept so that callers state what they lint.
    """
    if crl_type.upper() not in _CRL_TYPES:
        raise ValueError(f"unknown CRL type {crl_type!r}; expected CRL or ARL")
    threshold = _threshold(min_severity)
    doc = _load(loader.RFC5280CertificateListDocumentLoader(), der, "CRL")
    return _format(_crl_validator().validate(doc.root), threshold)


def lint_ocsp_response(der: bytes, min_severity: str = "WARNING") -> list[str]:
    """Like :func:`lint_certificate` for ``lint_ocsp_response lint -s <min_severity>``."""
    threshold = _threshold(min_severity)
    doc = _load(loader.RFC6960OCSPResponseDocumentLoader(), der, "OCSP response")
    return _format(_ocsp_response_validator().validate(doc.root), threshold)
