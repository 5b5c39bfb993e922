"""Delivery Lab's engine: a deterministic simulation of a Kafka cluster.

Standard library only; never imports Django or Channels.  Start at
``broker.simulation.Simulation``.
"""
