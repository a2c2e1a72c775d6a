"""Delayed events (MSC4140): events a client schedules for the server to send
later, and can cancel, restart or send at once meanwhile (Element Call's
"hang up" when a client vanishes, "send later" of work chat).

`service.py` answers the client's requests (scheduling with its limits, the
actions, look-ups); `scheduler.py` sends what is due, exactly once, also after
a restart, and cancels delayed state that someone else overwrote.
"""

# The transaction "device" of the events the scheduler sends: the event's
# transaction id is its delay id, so a send retried after a crash finds the
# event already in the room instead of adding it twice, and the sender's
# clients are shown the delay id in `unsigned` (see rooms/format.py).
DELAYED_TXN_DEVICE = "org.matrix.msc4140.delayed_event"
# The key in `unsigned` of a sent delayed event, shown to its sender (MSC4140).
UNSIGNED_DELAY_ID = "org.matrix.msc4140.delay_id"
