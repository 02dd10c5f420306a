"""Imported by every Python process started after ``source scripts/env.sh`` (it puts this
folder on PYTHONPATH): the quiet settings of xiaoer/core/quiet.py for plain ``rasa``."""

try:
    from xiaoer.core import quiet
except ImportError:  # another interpreter, without the project installed
    pass
else:
    quiet.install()
