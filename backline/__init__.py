"""Backline: event-sourced backend for independent musicians and their agents."""
