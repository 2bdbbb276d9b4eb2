"""The order-to-cash scenario played through the running services: simulation, demo, summary,
and the test documents and service processes they use."""
