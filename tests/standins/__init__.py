"""Local stand-ins for external services: real HTTP servers on loopback ports that
speak each service's protocol, with failure knobs. Nothing in the tests reaches the
internet."""
