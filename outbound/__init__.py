"""Herald's one outbound HTTP stack: the transport (`outbound.http`) and the one map from the
HTTP libraries' exceptions to Herald's transport errors (`outbound.errors`)."""
