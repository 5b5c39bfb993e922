"""Kafka's wire protocol for a room: real clients (kafka-python, confluent-kafka, aiokafka,
kcat) talk to the simulated brokers.  ``codec`` and ``records`` turn bytes into the
engine's data and back, ``gateway`` makes each connection an actor of the engine's
network, ``driver`` moves the virtual clock with wall time, ``listener`` is the asyncio
server.  See docs/kafka-clients.md.
"""
