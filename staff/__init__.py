"""Staff accounts (agents, admins and analysts), password login and expiring session tokens."""
