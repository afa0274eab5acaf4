"""`torc mcp`: an MCP (Model Context Protocol) server that lets AI assistants inspect, explain,
create, run and repair torc workflows. It reaches torc-server only through torc.client."""
