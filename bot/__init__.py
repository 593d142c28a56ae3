"""The Rasa 3.6 project (config, domain, stories, rules), its custom actions (served by the
action server) and the components the Rasa server loads (Parley's NLU and input channel). The
API's client of the Rasa server is ``conversations.dialogue``.

``bot.components`` is imported by the Rasa server's own Python 3.10 environment: it must only
use the standard library and what Rasa itself ships.
"""
