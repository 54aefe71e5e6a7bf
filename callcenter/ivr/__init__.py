"""IVR survey calls: the dialer, the call's state machine and its outcomes."""
