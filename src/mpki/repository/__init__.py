"""Room for public dissemination: search and download (issue 5); empty until its issue lands."""
