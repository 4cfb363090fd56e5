"""Signing throughput: ECDSA P-256 through the PKCS#11 keystore (SoftHSM2), the software keystore, and
`cryptography` alone; and SMKI device certificates issued with the HSM key, against the same with a raw key.

Every figure signs the same payload, a real device-certificate TBS. The HSM figures go the whole way
mpki goes: the keystore's private-key object hashes here, takes the module lock, signs with CKM_ECDSA in
the token and DER-encodes r||s. The issuance figures run the CA's own path without the database: CSR
parse and proof of possession, profile checks, validity, extensions, `sign_certificate`.

    python bench/sign.py --n 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from mpki.ca.parameters import profile_parameters
from mpki.ca.signing import Issuer, sign_certificate
from mpki.config import load_settings
from mpki.domain import Eui64, KeyUsageChoice
from mpki.keys import KeyAlgorithm, SoftwareKeyStore
from mpki.keys.pkcs11_tokens import SOFTHSM2_MODULE, write_softhsm_conf
from mpki.profiles import ProfileParameters, check_csr, get_profile, load_csr, validity
from mpki.profiles.requests import device_csr

BENCH_CA = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Device CA")])


def rate(count: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(count):
        work()
    return count / (time.perf_counter() - start)


def ec_key(key: CertificateIssuerPrivateKeyTypes) -> ec.EllipticCurvePrivateKey:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def make_csrs(count: int, hw_type: str) -> list[bytes]:
    """Distinct device keys and EUI-64s, as a comms hub would send them."""
    return [
        device_csr(
            ec.generate_private_key(ec.SECP256R1()),
            Eui64((0x00DB000000000000 + index).to_bytes(8, "big")),
            KeyUsageChoice.DIGITAL_SIGNATURE,
            hw_type,
        ).public_bytes(serialization.Encoding.DER)
        for index in range(count)
    ]


def issue_rate(csrs: list[bytes], key: CertificateIssuerPrivateKeyTypes, parameters: ProfileParameters) -> float:
    """Device certificates per second from pre-made CSRs through the CA's signing path, no database."""
    profile = get_profile("smki-device")
    public = key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    issuer = Issuer(
        name=BENCH_CA,
        key=key,
        key_identifier=x509.SubjectKeyIdentifier.from_public_key(public).digest,
        not_after=None,
    )
    serial = int.from_bytes(os.urandom(15), "big")
    start = time.perf_counter()
    for der in csrs:
        request = check_csr(profile, load_csr(der), parameters)
        serial += 1
        window = validity(profile, parameters, dt.datetime.now(dt.UTC), issuer.not_after)
        certificate = sign_certificate(profile, request, issuer, serial, window, parameters)
        certificate.public_bytes(serialization.Encoding.DER)
    return len(csrs) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="signatures (and certificates) per figure")
    parser.add_argument("--module", default=os.environ.get("MPKI_PKCS11_MODULE", SOFTHSM2_MODULE))
    args = parser.parse_args()
    if not os.path.exists(args.module):
        print(f"error: PKCS#11 module {args.module} not found", file=sys.stderr)
        return 1

    parameters = profile_parameters(load_settings({}))
    csrs = make_csrs(args.n, parameters.hw_type_oid)
    signature_algorithm = ec.ECDSA(hashes.SHA256())

    with tempfile.TemporaryDirectory(prefix="mpki-bench-sign-") as tmp:
        base = Path(tmp)
        conf = write_softhsm_conf(base)
        os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is loaded: it reads this at C_Initialize

        from mpki.keys.pkcs11 import Pkcs11KeyStore
        from mpki.keys.pkcs11_tokens import initialise_token

        initialise_token(args.module, "bench", "bench-so-pin", "bench-user-pin")
        hsm_store = Pkcs11KeyStore(args.module, lambda _token: "bench-user-pin")
        hsm_key = ec_key(hsm_store.signing_key(hsm_store.generate("bench", KeyAlgorithm.EC_P256, "bench").key_id))

        soft_store = SoftwareKeyStore.create(base / "software", "bench")
        soft_key = ec_key(soft_store.signing_key(soft_store.generate("bench", KeyAlgorithm.EC_P256).key_id))
        raw_key = ec.generate_private_key(ec.SECP256R1())

        payload = sign_certificate(
            get_profile("smki-device"),
            check_csr(get_profile("smki-device"), load_csr(csrs[0]), parameters),
            Issuer(BENCH_CA, raw_key, x509.SubjectKeyIdentifier.from_public_key(raw_key.public_key()).digest, None),
            1,
            validity(get_profile("smki-device"), parameters, dt.datetime.now(dt.UTC), None),
            parameters,
        ).tbs_certificate_bytes
        for key in (hsm_key, soft_key, raw_key):  # warm up, and check each key signs what it claims
            key.public_key().verify(key.sign(payload, signature_algorithm), payload, signature_algorithm)

        hsm_signs = rate(args.n, lambda: hsm_key.sign(payload, signature_algorithm))
        soft_signs = rate(args.n, lambda: soft_key.sign(payload, signature_algorithm))
        raw_signs = rate(args.n, lambda: raw_key.sign(payload, signature_algorithm))
        hsm_issue = issue_rate(csrs, hsm_key, parameters)
        raw_issue = issue_rate(csrs, raw_key, parameters)
        hsm_store.close()

    print(f"n: {args.n}")
    print(f"payload_bytes: {len(payload)}")
    print(f"hsm_signs_per_s: {hsm_signs:.0f}")
    print(f"soft_signs_per_s: {soft_signs:.0f}")
    print(f"raw_signs_per_s: {raw_signs:.0f}")
    print(f"hsm_issue_certs_per_s: {hsm_issue:.0f}")
    print(f"raw_issue_certs_per_s: {raw_issue:.0f}")
    print(f"hsm_to_raw_ratio: {hsm_signs / raw_signs:.3f}")
    print(f"soft_to_raw_ratio: {soft_signs / raw_signs:.3f}")
    print(f"hsm_issue_to_raw_issue_ratio: {hsm_issue / raw_issue:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
