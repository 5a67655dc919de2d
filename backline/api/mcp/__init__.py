"""ONCE MCP: the JSON-RPC endpoint at ``POST /api/mcp`` and its tool registry."""
