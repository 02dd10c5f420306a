"""The agent console web app (see xiaoer/console/app.py)."""
