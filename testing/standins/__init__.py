"""Local stand-ins for external services, shipped with the testing kit: real HTTP
servers on loopback ports that speak each service's protocol, with failure knobs
(``loopback``), and Apple's and Google's stores signing with test keys."""
