"""Conversations and their messages: the public chat API every channel goes through."""
