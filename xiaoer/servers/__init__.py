"""Entry points of the Rasa server and the action server."""
