"""Conversation analytics: the outbox fold, facts and hourly rollups, metrics and their API."""
