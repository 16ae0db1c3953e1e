"""Host and simulators API: the Simulator contract and registry, the service host (HTTPS + TCP listeners), the ASGI TLS bridge."""
