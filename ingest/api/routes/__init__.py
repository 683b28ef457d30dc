"""One router per resource; ``all_routers`` in the order they appear in the OpenAPI document."""
