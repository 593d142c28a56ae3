"""Who holds a conversation (bot, queue, agent) and the audited transitions between them."""
