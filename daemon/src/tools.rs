//! The tools: reads and mutations over the cluster, independent of MCP.
