"""The Rasa 3.6 project (config, domain, stories, rules), its custom actions and the client the
web API uses to talk to the Rasa server.

``bot.components`` is imported by the Rasa server's own Python 3.10 environment: it must only
use the standard library and what Rasa itself ships.
"""
