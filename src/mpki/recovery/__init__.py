"""Room for compromise procedures (issue 7); empty until its issue lands."""
