"""Xiaoer's custom actions (rasa-sdk). Thin: read slots, call one service, utter."""

from xiaoer import logsafe

logsafe.install()
