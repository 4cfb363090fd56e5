"""Room for organisations, people, roles, requests, duplicate checks and approvals (issue 4)."""
