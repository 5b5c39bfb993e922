"""The live side: rooms running the engine against wall time, frames and their fan-out,
the WebSocket consumer, and how web processes reach the rooms (gateway, runtime worker)."""
