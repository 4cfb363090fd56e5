"""Room for issuance metrics and charts (issue 6); empty until its issue lands."""
