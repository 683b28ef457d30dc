"""Open data (issue 18): the quarter's energy and street environment as public files with disclosure control
(docs/opendata.md)."""
