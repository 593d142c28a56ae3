"""Human hand-off: when the bot brings in a person (triggers), the queue, routing and claiming,
the agent console API, notes, suggested replies, CSAT and SLA. The states and their audited
transitions are ``conversations.state``; this package moves conversations through them."""
