"""The order-to-cash scenario played through the running services — its plan, what CRM, billing
and the payment gateway send, the stages that play it, the outcome, the demo and its summary —
and the test documents and service processes they use."""
