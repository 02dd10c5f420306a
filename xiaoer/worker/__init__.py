"""The worker: every background job of Xiaoer."""
