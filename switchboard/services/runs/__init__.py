"""The runs service: worker runs: enqueue, claim, heartbeat, finish, and the reaper."""
