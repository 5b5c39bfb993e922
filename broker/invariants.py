"""Invariants that must hold after every event, whatever the faults.

Property tests call ``violations(sim)`` after each step; an empty list means
all is well.  Each message names the broker, partition and offsets involved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.cluster import broker_name

if TYPE_CHECKING:
    from broker.simulation import Simulation


def violations(sim: Simulation) -> list[str]:
    out: list[str] = []
    cluster = sim.cluster
    for tp, state in cluster.controller.partitions.items():
        name = str(tp)
        if not set(state.isr) <= set(state.replicas):
            out.append(f"{name}: ISR {state.isr} is not a subset of replicas {state.replicas}")
        if not state.isr:
            out.append(f"{name}: empty ISR")
        if state.leader is not None and state.leader not in state.isr:
            out.append(f"{name}: leader {state.leader} not in ISR {state.isr}")
        for broker_id in state.replicas:
            log = cluster.brokers[broker_id].replicas[tp].log
            where = f"{broker_name(broker_id)} {name}"
            if not 0 <= log.log_start_offset <= log.high_watermark <= log.log_end_offset:
                out.append(
                    f"{where}: cursors out of order: log start {log.log_start_offset}, "
                    f"HW {log.high_watermark}, LEO {log.log_end_offset}"
                )
            expected = log.log_start_offset
            for lb in log.batches:
                if lb.base_offset != expected:
                    out.append(
                        f"{where}: offsets not dense: expected {expected}, "
                        f"batch starts at {lb.base_offset}"
                    )
                    break
                expected = lb.next_offset
            if expected != log.log_end_offset:
                out.append(f"{where}: LEO {log.log_end_offset} but the batches end at {expected}")
            epochs = [e.epoch for e in log.epoch_cache]
            starts = [e.start_offset for e in log.epoch_cache]
            if epochs != sorted(set(epochs)) or starts != sorted(starts):
                out.append(f"{where}: leader epoch cache not monotonic: {log.epoch_cache}")
        if state.leader is None:
            continue
        leader_log = cluster.brokers[state.leader].replicas[tp].log
        leader_ids = {
            offset: lb.batch.records[i].message_id
            for offset, lb, i in leader_log.records_below(leader_log.high_watermark)
        }
        for broker_id in state.isr:
            broker = cluster.brokers[broker_id]
            if broker_id == state.leader or not broker.alive:
                continue
            replica = broker.replicas[tp]
            progress = cluster.brokers[state.leader].replicas[tp].followers.get(broker_id)
            if progress is None or progress.log_end_offset < 0:
                continue  # the leader has not heard from it in this epoch yet
            bound = min(leader_log.high_watermark, progress.log_end_offset)
            for offset, lb, i in replica.log.records_below(bound):
                if leader_ids.get(offset) != lb.batch.records[i].message_id:
                    out.append(
                        f"{name}: in-sync {broker_name(broker_id)} holds "
                        f"{lb.batch.records[i].message_id} at committed offset {offset}, the "
                        f"leader {leader_ids.get(offset)}"
                    )
                    break
    return out
