"""Staff accounts (agents and admins), password login and expiring session tokens."""
