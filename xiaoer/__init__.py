"""Xiaoer (店小二): a Rasa customer-service assistant for Douyin shops."""

__version__ = "0.1.0"
