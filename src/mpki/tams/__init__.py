"""Room for Trust Anchor Management Protocol, RFC 5934 (issue 7); empty until its issue lands."""
