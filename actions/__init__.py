"""Xiaoer's custom actions (rasa-sdk). Thin: read slots, call one service, utter."""

from xiaoer.core import logsafe

logsafe.install()
