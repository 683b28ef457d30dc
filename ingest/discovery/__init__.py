"""Discovery of devices that report but are not registered: what the quarantine holds of them
(``unknown_device``, ``no_profile``, ``announcement``) grouped per gateway, and their registration.

``announcements`` parses the vendors' announcements (pure), ``listing`` builds the technicians' list,
``register`` registers one device and assigns it back to its first contact.
"""
