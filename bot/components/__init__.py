"""Rasa graph components loaded inside the Rasa server (Python 3.10, Rasa's own venv)."""
