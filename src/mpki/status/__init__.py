"""Room for revocation, CRL/ARL building, pre-signed OCSP (issue 5); empty until its issue lands."""
