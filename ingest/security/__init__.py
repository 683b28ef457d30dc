"""What every part shares for security: private files and directories, the audit log of security events."""
