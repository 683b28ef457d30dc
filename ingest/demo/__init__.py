"""``reallabor up``: the whole product on one machine, for a first look and for end-to-end tests.

``stack`` starts and stops the parts, ``ports`` holds the fixed ports, ``credentials`` the demo's
generated secrets, ``seed`` the registry of the simulated quarter.
"""
